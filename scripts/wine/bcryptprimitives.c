/* A stand-in bcryptprimitives.dll for Wine 8.0 (Debian 12), which lacks it: Rust's
 * standard library on Windows imports ProcessPrng from it for its random numbers (hash
 * map seeds). RtlGenRandom (advapi32's SystemFunction036) gives the same: bytes from the
 * system's CSPRNG. Built by scripts/wine/run.sh with mingw-w64; used only under Wine. */
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
