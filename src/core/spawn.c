/* Spawning a task and the end of its life: the record at the top of its
 * stack, the entry function, finishing and releasing it. (Being moved here
 * out of task.c.)
 */
