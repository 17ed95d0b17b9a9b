/* Type-check-only stand-in (see README.md): the four prototypes ring's C code uses. */
#ifndef POSTURE_SHIM_STRING_H
#define POSTURE_SHIM_STRING_H
#include <stddef.h>
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
#endif
