/* Watchers and hooks: who is told when a task ends, what follows its
 * cancellation, and waiting for a count of completions. (Being moved here
 * out of task.c.)
 */
