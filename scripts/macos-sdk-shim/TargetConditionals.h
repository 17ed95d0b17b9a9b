/* Stand-in for Apple's TargetConditionals.h, for type-checking (`cargo check`) the
 * workspace for the Apple targets on Linux: ring's C code includes it. Nothing built with
 * it is ever linked or run. See README.md beside it. */
#ifndef POSTURE_SHIM_TARGET_CONDITIONALS_H
#define POSTURE_SHIM_TARGET_CONDITIONALS_H
#define TARGET_OS_MAC 1
#define TARGET_OS_OSX 1
#define TARGET_OS_IPHONE 0
#define TARGET_OS_IOS 0
#define TARGET_OS_TV 0
#define TARGET_OS_WATCH 0
#define TARGET_OS_VISION 0
#define TARGET_OS_MACCATALYST 0
#define TARGET_OS_SIMULATOR 0
#define TARGET_OS_EMBEDDED 0
#endif
