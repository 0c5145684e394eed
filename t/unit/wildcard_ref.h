/*
 * The reference semantics of X-Ray's wildcards, as a plain dynamic program
 * over byte offsets: slow and obviously right, for the unit tests and the
 * fuzz target to check xray_wildcard_match() against.  '*' and '?' step
 * over whole UTF-8 characters; ASCII letters compare case-insensitively.
 */

#ifndef WILDCARD_REF_H
#define WILDCARD_REF_H

#include <stddef.h>


#define WILDCARD_REF_MAX  64           /* longest pattern and string */


static size_t
wildcard_ref_utf8_len(const unsigned char *p, size_t n)
{
    size_t  len, i;

    if (p[0] < 0xc2 || p[0] > 0xf4) {
        return 1;
    }

    len = (p[0] < 0xe0) ? 2 : (p[0] < 0xf0) ? 3 : 4;

    if (len > n) {
        return 1;
    }

    for (i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 1;
        }
    }

    return len;
}


static unsigned char
wildcard_ref_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char) (c + 32) : c;
}


static int
wildcard_ref_match(const unsigned char *p, size_t m, const unsigned char *s,
    size_t n)
{
    size_t         i, j, u;
    unsigned char  dp[WILDCARD_REF_MAX + 1][WILDCARD_REF_MAX + 1];

    for (j = 0; j <= n; j++) {
        dp[m][j] = (j == n);
    }

    for (i = m; i-- > 0; /* void */ ) {
        for (j = n + 1; j-- > 0; /* void */ ) {
            u = (j < n) ? wildcard_ref_utf8_len(s + j, n - j) : 0;

            if (p[i] == '*') {
                dp[i][j] = dp[i + 1][j] || (j < n && dp[i][j + u]);

            } else if (p[i] == '?') {
                dp[i][j] = (j < n && dp[i + 1][j + u]);

            } else {
                dp[i][j] = (j < n
                            && wildcard_ref_lower(p[i])
                               == wildcard_ref_lower(s[j])
                            && dp[i + 1][j + 1]);
            }
        }
    }

    return dp[0][0];
}

#endif /* WILDCARD_REF_H */
