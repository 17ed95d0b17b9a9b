/* Type-check-only stand-in (see README.md): a no-op assert. */
#ifndef POSTURE_SHIM_ASSERT_H
#define POSTURE_SHIM_ASSERT_H
#define assert(x) ((void)0)
#endif
