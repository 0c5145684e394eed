/*
 * Minimal TAP producer for the C unit tests: prove(1) reads the output.
 */

#ifndef TAP_H
#define TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>


static int  tap_count;
static int  tap_failed;


static int
tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list  ap;

    tap_count++;

    if (!cond) {
        tap_failed++;
    }

    printf("%sok %d - ", cond ? "" : "not ", tap_count);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");

    if (!cond) {
        printf("#   failed at %s line %d\n", file, line);
    }

    return cond;
}


#define ok(cond, ...)  tap_ok((cond) != 0, __FILE__, __LINE__, __VA_ARGS__)

#define is_int(got, want, ...)                                               \
    (tap_ok((long long) (got) == (long long) (want), __FILE__, __LINE__,     \
            __VA_ARGS__)                                                     \
     || (printf("#   got %lld, want %lld\n", (long long) (got),              \
                (long long) (want)), 0))

#define is_mem(got, glen, want, ...)                                         \
    (tap_ok((size_t) (glen) == strlen(want)                                  \
            && memcmp((got), (want), (glen)) == 0, __FILE__, __LINE__,       \
            __VA_ARGS__)                                                     \
     || (printf("#   got '%.*s', want '%s'\n", (int) (glen),                 \
                (const char *) (got), (want)), 0))


static int
done_testing(void)
{
    printf("1..%d\n", tap_count);
    return tap_failed ? 1 : 0;
}

#endif /* TAP_H */
