/* The intrusive list and heap (src/util/), checked against plain arrays
 * under random operations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "harness.h"

#include "util/heap.h"
#include "util/list.h"

typedef struct {
  int key;
  int in;
  loom__heap_node_t hn;
  loom__link_t ln;
} item_t;

static int less(const loom__heap_node_t *a, const loom__heap_node_t *b) {
  return loom__container_of(a, item_t, hn)->key < loom__container_of(b, item_t, hn)->key;
}

/* Every parent is <= its children, every child points back at its parent,
 * and the tree holds exactly the count it claims. */
static size_t check_tree(const loom__heap_node_t *n, const loom__heap_node_t *parent) {
  if (!n) return 0;
  assert_ptr_equal(n->parent, parent);
  if (parent) assert_false(less(n, parent));
  return 1 + check_tree(n->left, n) + check_tree(n->right, n);
}

static void test_heap_random(void **state) {
  (void)state;
  enum { N = 300 };
  static item_t it[N];
  loom__heap_t h = {0};
  unsigned seed = 12345;
  for (int round = 0; round < 20000; round++) {
    seed = seed * 1103515245u + 12345u;
    item_t *x = &it[(seed >> 8) % N];
    if (!x->in) {
      x->key = (int)((seed >> 4) % 50); /* many ties */
      loom__heap_insert(&h, &x->hn, less);
      x->in = 1;
    } else if ((seed >> 20) & 1) {
      loom__heap_remove(&h, &x->hn, less);
      x->in = 0;
      assert_null(x->hn.parent);
    } else if ((seed >> 21) & 1) {
      /* Some z, not in h, takes x's place with a key of its own. */
      item_t *z = NULL;
      for (int k = 0; k < N && !z; k++) {
        item_t *c = &it[(k + (int)(seed >> 3)) % N];
        if (!c->in) z = c;
      }
      if (!z) continue;
      z->key = (int)((seed >> 4) % 50);
      loom__heap_replace(&h, &x->hn, &z->hn, less);
      z->in = 1;
      x->in = 0;
      assert_null(x->hn.parent);
    } else if (h.min) {
      item_t *m = loom__container_of(h.min, item_t, hn);
      for (int i = 0; i < N; i++)
        if (it[i].in) assert_true(m->key <= it[i].key);
      loom__heap_remove(&h, h.min, less);
      m->in = 0;
    }
    size_t in = 0;
    for (int i = 0; i < N; i++) in += (size_t)it[i].in;
    assert_int_equal(h.n, in);
    assert_int_equal(check_tree(h.min, NULL), in);
  }
  /* Drains in order. */
  int last = -1;
  while (h.min) {
    item_t *m = loom__container_of(h.min, item_t, hn);
    assert_true(m->key >= last);
    last = m->key;
    loom__heap_remove(&h, h.min, less);
  }
  assert_int_equal(h.n, 0);
}

static void test_list_ops(void **state) {
  (void)state;
  item_t a = {.key = 1}, b = {.key = 2}, c = {.key = 3}, d = {.key = 4};
  loom__list_t l = {0}, m = {0};
  assert_true(loom__list_empty(&l));
  loom__list_push_back(&l, &b.ln);
  loom__list_push_front(&l, &a.ln);
  loom__list_push_back(&l, &c.ln);
  loom__link_t *p, *t;
  int want = 1;
  loom__list_foreach(p, &l)
      assert_int_equal(loom__list_entry(p, item_t, ln)->key, want++);
  assert_int_equal(want, 4);
  loom__list_remove(&l, &b.ln);
  assert_false(loom__list_contains(&l, &b.ln));
  assert_null(b.ln.next);
  loom__list_push_back(&m, &d.ln);
  loom__list_splice_back(&l, &m);
  assert_true(loom__list_empty(&m));
  int keys[3], k = 0;
  loom__list_foreach_safe(p, t, &l) {
    keys[k++] = loom__list_entry(p, item_t, ln)->key;
    loom__list_remove(&l, p);
  }
  assert_int_equal(k, 3);
  assert_int_equal(keys[0], 1);
  assert_int_equal(keys[1], 3);
  assert_int_equal(keys[2], 4);
  assert_true(loom__list_empty(&l));
  assert_null(l.tail);
  assert_null(loom__list_pop_front(&l));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_heap_random),
      cmocka_unit_test(test_list_ops),
  };
  return HARNESS_RUN(tests);
}
