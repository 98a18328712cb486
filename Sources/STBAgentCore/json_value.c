/* JSON values: freeing, member lookup and typed getters, deep equality. */
#include "stb_json.h"

#include <stdlib.h>
#include <string.h>

void sj_free(sj_value *v)
{
    if (!v) return;
    switch (v->type) {
    case SJ_STRING: free(v->u.str.ptr); break;
    case SJ_ARRAY:
        for (size_t i = 0; i < v->u.arr.count; i++) sj_free(v->u.arr.items[i]);
        free(v->u.arr.items);
        break;
    case SJ_OBJECT:
        for (size_t i = 0; i < v->u.obj.count; i++) {
            free(v->u.obj.members[i].key);
            sj_free(v->u.obj.members[i].value);
        }
        free(v->u.obj.members);
        break;
    default: break;
    }
    free(v);
}

const sj_value *sj_get(const sj_value *obj, const char *key)
{
    if (!obj || obj->type != SJ_OBJECT) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < obj->u.obj.count; i++)
        if (obj->u.obj.members[i].key_len == kl && memcmp(obj->u.obj.members[i].key, key, kl) == 0)
            return obj->u.obj.members[i].value;
    return NULL;
}

const char *sj_get_str(const sj_value *obj, const char *key)
{
    const sj_value *v = sj_get(obj, key);
    return v && v->type == SJ_STRING ? v->u.str.ptr : NULL;
}

bool sj_get_int(const sj_value *obj, const char *key, int64_t *out)
{
    const sj_value *v = sj_get(obj, key);
    if (!v || v->type != SJ_INT) return false;
    *out = v->u.integer;
    return true;
}

bool sj_get_num(const sj_value *obj, const char *key, double *out)
{
    const sj_value *v = sj_get(obj, key);
    if (!v) return false;
    if (v->type == SJ_INT) { *out = (double)v->u.integer; return true; }
    if (v->type == SJ_DOUBLE) { *out = v->u.number; return true; }
    return false;
}

bool sj_equal(const sj_value *a, const sj_value *b)
{
    if (!a || !b) return a == b;
    if (a->type != b->type) return false;
    switch (a->type) {
    case SJ_NULL: return true;
    case SJ_BOOL: return a->u.boolean == b->u.boolean;
    case SJ_INT: return a->u.integer == b->u.integer;
    case SJ_DOUBLE: return a->u.number == b->u.number;
    case SJ_STRING: return a->u.str.len == b->u.str.len && memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
    case SJ_ARRAY:
        if (a->u.arr.count != b->u.arr.count) return false;
        for (size_t i = 0; i < a->u.arr.count; i++)
            if (!sj_equal(a->u.arr.items[i], b->u.arr.items[i])) return false;
        return true;
    case SJ_OBJECT:
        if (a->u.obj.count != b->u.obj.count) return false;
        for (size_t i = 0; i < a->u.obj.count; i++) {
            const sj_value *o = sj_get(b, a->u.obj.members[i].key);
            if (!o || !sj_equal(a->u.obj.members[i].value, o)) return false;
        }
        return true;
    }
    return false;
}
