/*
 * One binary min-heap over an array, for the timer entries (timer.c) and
 * the events held for the grace (hold.c): HEAP_DEFINE(name, T, less)
 * makes static inline functions over T[], ordered by less(const T *,
 * const T *).  Generated per type rather than written over void * and a
 * size so that the comparisons and the moves inline: the timer heap is on
 * the per-event path.  Both heaps' orders are total, so the pops do not
 * depend on how the heap was built.
 *
 *   name_up(h, i, x)       x into the hole at i, moved up past greater parents
 *   name_down(h, n, i, x)  x into the hole at i of h[0..n), moved down below smaller children
 *   name_heapify(h, n)     h[0..n) in any order made a heap, bottom up: O(n)
 *   name_pop(h, &n)        the least, taken out (n > 0)
 */
#ifndef RISKD_ENGINE_HEAP_H
#define RISKD_ENGINE_HEAP_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>

#define HEAP_DEFINE(name, T, less)                                                      \
        static inline void name##_up(T *h, uint32_t i, T x)                             \
        {                                                                               \
                for (uint32_t p; i > 0 && less(&x, &h[p = (i - 1) / 2]); i = p)         \
                        h[i] = h[p];                                                    \
                h[i] = x;                                                               \
        }                                                                               \
        static inline void name##_down(T *h, uint32_t n, uint32_t i, T x)               \
        {                                                                               \
                for (;;) {                                                              \
                        uint32_t l = 2 * i + 1, r = l + 1, m = i;                       \
                        const T *mx = &x;                                               \
                        if (l < n && less(&h[l], mx)) {                                 \
                                m = l;                                                  \
                                mx = &h[l];                                             \
                        }                                                               \
                        if (r < n && less(&h[r], mx))                                   \
                                m = r;                                                  \
                        if (m == i)                                                     \
                                break;                                                  \
                        h[i] = h[m];                                                    \
                        i = m;                                                          \
                }                                                                       \
                h[i] = x;                                                               \
        }                                                                               \
        __attribute__((unused)) static inline void name##_heapify(T *h, uint32_t n)     \
        {                                                                               \
                for (uint32_t i = n / 2; i-- > 0;)                                      \
                        name##_down(h, n, i, h[i]);                                     \
        }                                                                               \
        static inline T name##_pop(T *h, uint32_t *n)                                   \
        {                                                                               \
                assert(*n > 0);                                                         \
                T top = h[0];                                                           \
                T last = h[--*n];                                                       \
                if (*n)                                                                 \
                        name##_down(h, *n, 0, last);                                    \
                return top;                                                             \
        }

#endif
