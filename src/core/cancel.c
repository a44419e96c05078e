/* Cancelling a task, and every task of a runtime. (Being moved here out of
 * task.c.)
 */
