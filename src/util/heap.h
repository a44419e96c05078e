/* An intrusive binary min-heap.
 *
 * The node (loom__heap_node_t) is embedded in what is ordered (a timer in a
 * waiter or a scope), so inserting and removing never allocate and cannot
 * fail. The heap is a tree of pointers kept complete: with n nodes, node
 * number k (1-based, in level order) is reached from the root by the bits of
 * k below its highest one, 0 meaning left and 1 right. Insertion adds node
 * n+1 and sifts it up; removal moves node n into the hole and sifts it down
 * or up. Both are O(log n).
 *
 *            min (1)
 *           /       \
 *        (2)         (3)          node 5 = 0b101: left, then right
 *       /   \       /
 *     (4)   (5)   (6)
 *
 * The order is the caller's `less` function; equal keys come out in no
 * particular order, so callers that need ties in insertion order add a
 * sequence number to their key. Zero-filled memory is a valid empty heap.
 */
#ifndef LOOM_UTIL_HEAP_H
#define LOOM_UTIL_HEAP_H

#include <stddef.h>

#include "container.h"

typedef struct loom__heap_node_s {
  struct loom__heap_node_s *left, *right, *parent;
} loom__heap_node_t;

typedef struct loom__heap_s {
  loom__heap_node_t *min;
  size_t n;
} loom__heap_t;

typedef int (*loom__heap_less_fn)(const loom__heap_node_t *a, const loom__heap_node_t *b);

static inline loom__heap_node_t *loom__heap_min(const loom__heap_t *h) { return h->min; }

/* The link (a child pointer, or the root) that holds node number k, and the
 * node that link belongs to (NULL for the root). */
static inline loom__heap_node_t **loom__heap_slot_(loom__heap_t *h, size_t k,
                                                   loom__heap_node_t **parent) {
  loom__heap_node_t **link = &h->min;
  int depth = 0;
  for (size_t p = k; p > 1; p >>= 1) depth++;
  *parent = NULL;
  while (depth-- > 0) {
    *parent = *link;
    link = ((k >> depth) & 1) ? &(*link)->right : &(*link)->left;
  }
  return link;
}

/* Exchanges c with its parent: c takes the parent's place in the tree. */
static inline void loom__heap_swap_up_(loom__heap_t *h, loom__heap_node_t *c) {
  loom__heap_node_t *p = c->parent, *gp = p->parent;
  loom__heap_node_t *cl = c->left, *cr = c->right;
  if (p->left == c) {
    c->left = p;
    c->right = p->right;
    if (c->right) c->right->parent = c;
  } else {
    c->right = p;
    c->left = p->left;
    if (c->left) c->left->parent = c;
  }
  p->left = cl;
  p->right = cr;
  if (cl) cl->parent = p;
  if (cr) cr->parent = p;
  p->parent = c;
  c->parent = gp;
  if (!gp)
    h->min = c;
  else if (gp->left == p)
    gp->left = c;
  else
    gp->right = c;
}

static inline void loom__heap_insert(loom__heap_t *h, loom__heap_node_t *n,
                                     loom__heap_less_fn less) {
  loom__heap_node_t *parent;
  loom__heap_node_t **link = loom__heap_slot_(h, h->n + 1, &parent);
  n->left = n->right = NULL;
  n->parent = parent;
  *link = n;
  h->n++;
  while (n->parent && less(n, n->parent)) loom__heap_swap_up_(h, n);
}

/* Puts n, which is not in h, in the place of old, which is, then moves n
 * to where its key belongs: O(1) when the key is unchanged or the order
 * still holds (a timer bucket handing its place to its next timer). old's
 * links are cleared. */
static inline void loom__heap_replace(loom__heap_t *h, loom__heap_node_t *old,
                                      loom__heap_node_t *n, loom__heap_less_fn less) {
  *n = *old;
  if (n->left) n->left->parent = n;
  if (n->right) n->right->parent = n;
  if (!n->parent)
    h->min = n;
  else if (n->parent->left == old)
    n->parent->left = n;
  else
    n->parent->right = n;
  old->left = old->right = old->parent = NULL;
  for (;;) {
    loom__heap_node_t *m = n;
    if (n->left && less(n->left, m)) m = n->left;
    if (n->right && less(n->right, m)) m = n->right;
    if (m == n) break;
    loom__heap_swap_up_(h, m);
  }
  while (n->parent && less(n, n->parent)) loom__heap_swap_up_(h, n);
}

/* Removes n, which must be in h. Its links are cleared afterwards. */
static inline void loom__heap_remove(loom__heap_t *h, loom__heap_node_t *n,
                                     loom__heap_less_fn less) {
  loom__heap_node_t *parent;
  loom__heap_node_t **link = loom__heap_slot_(h, h->n, &parent);
  loom__heap_node_t *last = *link;
  *link = NULL; /* detaches the last node (the root if it was alone) */
  h->n--;
  if (last != n) {
    /* The last node fills n's place, then finds its level. If n was its
     * parent, the link cleared above was n's, so n's children are right. */
    last->left = n->left;
    last->right = n->right;
    last->parent = n->parent;
    if (last->left) last->left->parent = last;
    if (last->right) last->right->parent = last;
    if (!n->parent)
      h->min = last;
    else if (n->parent->left == n)
      n->parent->left = last;
    else
      n->parent->right = last;
    for (;;) {
      loom__heap_node_t *m = last;
      if (last->left && less(last->left, m)) m = last->left;
      if (last->right && less(last->right, m)) m = last->right;
      if (m == last) break;
      loom__heap_swap_up_(h, m);
    }
    while (last->parent && less(last, last->parent)) loom__heap_swap_up_(h, last);
  }
  n->left = n->right = n->parent = NULL;
}

#endif
