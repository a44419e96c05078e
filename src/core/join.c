/* Joining and detaching a task, and asking whether it has ended. (Being
 * moved here out of task.c.)
 */
