/* Intrusive doubly linked lists.
 *
 * A node (loom__link_t) is embedded in the structure it links; the list head
 * (loom__list_t) holds the first and last node. Both are NULL-terminated
 * rather than circular, so that zero-filled memory is a valid empty list and
 * a valid unlinked node: caller-owned objects (a zero-filled lock, a task's
 * fresh frame) need no init call before their first use.
 *
 *     list.head ──> [node] <──> [node] <──> [node] <── list.tail
 *                    prev=NULL                next=NULL
 *
 * Nothing here allocates or fails. A node does not record which list it is
 * on; the owner keeps that (a flag or a pointer) when it needs to know.
 * Use loom__container_of (container.h) to get from a node to its owner, or
 * loom__list_entry for the typed shorthand.
 */
#ifndef LOOM_UTIL_LIST_H
#define LOOM_UTIL_LIST_H

#include <stddef.h>

#include "container.h"

typedef struct loom__link_s {
  struct loom__link_s *next, *prev;
} loom__link_t;

typedef struct loom__list_s {
  loom__link_t *head, *tail;
} loom__list_t;

#define loom__list_entry(link, type, member) loom__container_of(link, type, member)

/* Iterates over the nodes; the loop body must not unlink `pos` (use the
 * _safe form, which reads the next node first). */
#define loom__list_foreach(pos, list) \
  for ((pos) = (list)->head; (pos); (pos) = (pos)->next)
#define loom__list_foreach_safe(pos, tmp, list) \
  for ((pos) = (list)->head; (pos) && ((tmp) = (pos)->next, 1); (pos) = (tmp))

static inline void loom__list_init(loom__list_t *l) { l->head = l->tail = NULL; }

static inline int loom__list_empty(const loom__list_t *l) { return l->head == NULL; }

static inline void loom__list_push_back(loom__list_t *l, loom__link_t *n) {
  n->next = NULL;
  n->prev = l->tail;
  if (l->tail)
    l->tail->next = n;
  else
    l->head = n;
  l->tail = n;
}

static inline void loom__list_push_front(loom__list_t *l, loom__link_t *n) {
  n->prev = NULL;
  n->next = l->head;
  if (l->head)
    l->head->prev = n;
  else
    l->tail = n;
  l->head = n;
}

/* Unlinks n, which must be on l. Its links are cleared, so unlinking it
 * from a list it is not on is caught by the debug checks of the owner rather
 * than corrupting a neighbour. */
static inline void loom__list_remove(loom__list_t *l, loom__link_t *n) {
  if (n->prev)
    n->prev->next = n->next;
  else
    l->head = n->next;
  if (n->next)
    n->next->prev = n->prev;
  else
    l->tail = n->prev;
  n->next = n->prev = NULL;
}

/* The first node, unlinked; NULL if the list is empty. */
static inline loom__link_t *loom__list_pop_front(loom__list_t *l) {
  loom__link_t *n = l->head;
  if (n) loom__list_remove(l, n);
  return n;
}

/* Moves every node of `from` to the end of `to`, in order; `from` ends
 * empty. */
static inline void loom__list_splice_back(loom__list_t *to, loom__list_t *from) {
  if (!from->head) return;
  if (to->tail) {
    to->tail->next = from->head;
    from->head->prev = to->tail;
  } else {
    to->head = from->head;
  }
  to->tail = from->tail;
  from->head = from->tail = NULL;
}

/* Whether n is on l: a walk, for debug checks only. */
static inline int loom__list_contains(const loom__list_t *l, const loom__link_t *n) {
  for (const loom__link_t *p = l->head; p; p = p->next)
    if (p == n) return 1;
  return 0;
}

#endif
