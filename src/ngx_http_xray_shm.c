/*
 * The shared-memory zone: sampling reservoirs and counters that all worker
 * processes share, so that N workers do not sample N times the reservoir,
 * and that survive a reload.
 */

#include "ngx_http_xray.h"


static ngx_int_t ngx_http_xray_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);


ngx_int_t
ngx_http_xray_shm_add(ngx_conf_t *cf, ngx_http_xray_main_conf_t *xmcf)
{
    size_t     size;
    ngx_str_t  name = ngx_string("ngx_http_xray");

    size = ngx_align(sizeof(ngx_http_xray_shm_t), ngx_pagesize)
           + 8 * ngx_pagesize;

    xmcf->shm_zone = ngx_shared_memory_add(cf, &name, size,
                                           &ngx_http_xray_module);
    if (xmcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    xmcf->shm_zone->init = ngx_http_xray_init_zone;
    xmcf->shm_zone->data = xmcf;

    return NGX_OK;
}


static ngx_int_t
ngx_http_xray_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_uint_t                  i;
    ngx_slab_pool_t            *shpool;
    ngx_atomic_uint_t           now;
    ngx_http_xray_shm_t        *shm;
    ngx_http_xray_main_conf_t  *xmcf;

    xmcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data) {
        /* a reload: keep the counters of the previous cycle */
        shm = data;

    } else if (shm_zone->shm.exists) {
        shm = shpool->data;

    } else {
        shm = ngx_slab_calloc(shpool, sizeof(ngx_http_xray_shm_t));
        if (shm == NULL) {
            return NGX_ERROR;
        }

        shpool->data = shm;
    }

    if (data == NULL
        || shm->rules_crc != xmcf->rules_crc
        || shm->nrules != xmcf->rules.nrules)
    {
        /* other rules: per-rule figures of the old ones mean nothing now */
        ngx_memzero(shm->rules, sizeof(shm->rules));
        shm->rules_crc = xmcf->rules_crc;
        shm->nrules = xmcf->rules.nrules;

        /* reservoirs start in the current second: see reservoir_take() */
        now = (ngx_atomic_uint_t) ngx_time() & NGX_HTTP_XRAY_RES_MASK;

        for (i = 0; i < XRAY_RULES_MAX; i++) {
            shm->rules[i].reservoir = now << NGX_HTTP_XRAY_RES_SHIFT;
        }

        shm->emitted = now << NGX_HTTP_XRAY_RES_SHIFT;
    }

    xmcf->shm = shm;
    shm_zone->data = shm;

    return NGX_OK;
}


ngx_uint_t
ngx_http_xray_reservoir_take(ngx_atomic_t *reservoir, uint32_t capacity,
    time_t now)
{
    ngx_atomic_int_t   age;
    ngx_atomic_uint_t  old, new, sec, taken, cur;

    if (capacity == 0) {
        return 0;
    }

    cur = (ngx_atomic_uint_t) now & NGX_HTTP_XRAY_RES_MASK;

    for ( ;; ) {
        old = *reservoir;
        sec = old >> NGX_HTTP_XRAY_RES_SHIFT;
        taken = old & NGX_HTTP_XRAY_RES_MASK;

        /*
         * Workers' cached clocks differ by a fraction of a second: a worker
         * still in the previous second counts against the newer one rather
         * than opening the old second again.
         */
        age = (ngx_atomic_int_t) ((cur - sec) << NGX_HTTP_XRAY_RES_SHIFT);

        if (age > 0) {
            new = (cur << NGX_HTTP_XRAY_RES_SHIFT) | 1;

        } else if (taken >= capacity || taken == NGX_HTTP_XRAY_RES_MASK) {
            return 0;

        } else {
            new = old + 1;
        }

        if (ngx_atomic_cmp_set(reservoir, old, new)) {
            return 1;
        }
    }
}
