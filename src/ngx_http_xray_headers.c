/*
 * Finding, adding and removing a header in a request's or a response's
 * header list: the one place that walks nginx's lists (with the inline
 * ngx_http_xray_header_first() of ngx_http_xray.h), knows that a removed
 * response header has hash 0, that a request header list may never have
 * been made (HTTP/0.9), and which nginx versions chain same-named headers.
 */

#include "ngx_http_xray.h"


static ngx_uint_t ngx_http_xray_name_like(ngx_str_t *key, ngx_str_t *name);


/*
 * The next header named name (case-insensitive) from the cursor on, or
 * NULL.  cur may be NULL: the first one.  A cursor starts zeroed and moves
 * past each header found, so that the same call finds them all in turn.
 * Headers marked removed (hash 0) are skipped.
 */

ngx_table_elt_t *
ngx_http_xray_header_find(ngx_list_t *list, ngx_str_t *name,
    ngx_http_xray_cursor_t *cur)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (cur && cur->part) {
        part = cur->part;
        i = cur->i;

    } else {
        part = &list->part;
        i = 0;
    }

    h = part->elts;

    for ( /* void */ ; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash != 0
            && h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            if (cur) {
                cur->part = part;
                cur->i = i + 1;
            }

            return &h[i];
        }
    }

    if (cur) {
        cur->part = part;
        cur->i = i;
    }

    return NULL;
}


/*
 * The next request header named as key says from the cursor on, or NULL,
 * as ngx_http_xray_header_find() finds it, but by the hash and lowercase
 * name nginx keys every request header with (HTTP/1 and HTTP/2 parsers
 * alike, and the proxy module finds them so): a name of the same length
 * is compared only when its hash matches.  Removed headers have hash 0.
 */

ngx_table_elt_t *
ngx_http_xray_header_find_in(ngx_list_t *list, ngx_http_xray_key_t *key,
    ngx_http_xray_cursor_t *cur)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (cur && cur->part) {
        part = cur->part;
        i = cur->i;

    } else {
        part = &list->part;
        i = 0;
    }

    h = part->elts;

    for ( /* void */ ; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == key->hash
            && h[i].key.len == key->lowcase.len
            && ngx_memcmp(h[i].lowcase_key, key->lowcase.data,
                          key->lowcase.len)
               == 0)
        {
            if (cur) {
                cur->part = part;
                cur->i = i + 1;
            }

            return &h[i];
        }
    }

    if (cur) {
        cur->part = part;
        cur->i = i;
    }

    return NULL;
}


/*
 * The first request header named as key says, or NULL, and *n how many
 * there are, *differ whether any of the others has another value than the
 * first's: for any name.  ngx_http_xray_header_first() (ngx_http_xray.h)
 * walks the list itself for the usual case.
 */

ngx_table_elt_t *
ngx_http_xray_header_count(ngx_list_t *list, ngx_http_xray_key_t *key,
    ngx_uint_t *n, ngx_uint_t *differ)
{
    ngx_uint_t               found, other;
    ngx_table_elt_t         *h, *first;
    ngx_http_xray_cursor_t   cur;

    ngx_memzero(&cur, sizeof(ngx_http_xray_cursor_t));

    found = 0;
    other = 0;
    first = NULL;

    while ((h = ngx_http_xray_header_find_in(list, key, &cur)) != NULL) {

        if (found++ == 0) {
            first = h;
            continue;
        }

        if (h->value.len != first->value.len
            || ngx_memcmp(h->value.data, first->value.data, h->value.len)
               != 0)
        {
            other = 1;
        }
    }

    *n = found;
    *differ = other;

    return first;
}


/* key's hash, as nginx computes it for a request header of that name */

void
ngx_http_xray_key_init(ngx_http_xray_key_t *key)
{
    key->hash = ngx_hash_key(key->lowcase.data, key->lowcase.len);
}


/*
 * Appends "name: value" to list, with the hash and lowercased name nginx
 * gives the headers it parsed (the proxy module looks them up so).  nginx
 * leaves the request header list of an HTTP/0.9 request unset: it is made
 * here first.
 */

ngx_table_elt_t *
ngx_http_xray_header_add(ngx_http_request_t *r, ngx_list_t *list,
    ngx_str_t *name, ngx_str_t *value)
{
    u_char           *lowcase;
    ngx_table_elt_t  *h;

    if (list->nalloc == 0
        && ngx_list_init(list, r->pool, 1, sizeof(ngx_table_elt_t)) != NGX_OK)
    {
        return NULL;
    }

    lowcase = ngx_pnalloc(r->pool, name->len);
    if (lowcase == NULL) {
        return NULL;
    }

    h = ngx_list_push(list);
    if (h == NULL) {
        return NULL;
    }

    h->hash = ngx_hash_strlow(lowcase, name->data, name->len);
    h->key = *name;
    h->lowcase_key = lowcase;
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return h;
}


/*
 * Removes every header named name but *keep (keep, or *keep, may be NULL).
 * A response header is marked removed (hash 0), as nginx's own filters do.
 * In a request header list a name with "_" for any of its "-" counts as
 * name too (underscores_in_headers on: upstreams that map names CGI-style,
 * HTTP_X_AMZN_TRACE_ID, would merge it with the header the proxy sends).
 * A request header list is rebuilt instead, since request headers are
 * forwarded whatever their hash: the elements themselves stay where they
 * are, because nginx keeps pointers to some (headers_in.host,
 * user_agent...); *keep is updated to where that header now is in the list.
 */

ngx_int_t
ngx_http_xray_header_remove(ngx_http_request_t *r, ngx_list_t *list,
    ngx_str_t *name, ngx_table_elt_t **keep)
{
    ngx_uint_t               i, n;
    ngx_list_t               old;
    ngx_list_part_t         *part;
    ngx_table_elt_t         *h, *copy;
    ngx_http_xray_cursor_t   cur;

    if (list->nalloc == 0) {
        return NGX_OK;
    }

    if (list != &r->headers_in.headers) {
        ngx_memzero(&cur, sizeof(ngx_http_xray_cursor_t));

        while ((h = ngx_http_xray_header_find(list, name, &cur)) != NULL) {
            if (keep == NULL || h != *keep) {
                h->hash = 0;
            }
        }

        return NGX_OK;
    }

    /* a copy of the list head: its parts (and elements) stay where they are */
    old = *list;
    n = 0;

    for (part = &old.part; part; part = part->next) {
        n += part->nelts;
    }

    if (ngx_list_init(list, r->pool, n, sizeof(ngx_table_elt_t)) != NGX_OK) {
        return NGX_ERROR;
    }

    for (part = &old.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {

            if (ngx_http_xray_name_like(&h[i].key, name)
                && (keep == NULL || &h[i] != *keep))
            {
                continue;
            }

            copy = ngx_list_push(list);
            if (copy == NULL) {
                return NGX_ERROR;
            }

            *copy = h[i];

            if (keep && &h[i] == *keep) {
                *keep = copy;
            }
        }
    }

    return NGX_OK;
}


/*
 * Whether list holds a header named like name but not name itself: with
 * "_" for some "-" (underscores_in_headers on), in any case.
 */

ngx_uint_t
ngx_http_xray_header_underscored(ngx_list_t *list, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (list->nalloc == 0) {
        return 0;
    }

    for (part = &list->part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (ngx_http_xray_name_like(&h[i].key, name)
                && ngx_strncasecmp(h[i].key.data, name->data, name->len)
                   != 0)
            {
                return 1;
            }
        }
    }

    return 0;
}


/* key is name in any case, with any of name's "-" written as "_" */

static ngx_uint_t
ngx_http_xray_name_like(ngx_str_t *key, ngx_str_t *name)
{
    u_char      c;
    ngx_uint_t  i;

    if (key->len != name->len) {
        return 0;
    }

    for (i = 0; i < key->len; i++) {
        c = ngx_tolower(key->data[i]);

        if (c == '_' && name->data[i] == '-') {
            c = '-';
        }

        if (c != ngx_tolower(name->data[i])) {
            return 0;
        }
    }

    return 1;
}
