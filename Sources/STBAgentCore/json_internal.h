/* Private to the json_*.c files (not a public header: it is outside include/). json.c was split
 * by concern; the function below was static in it and is now shared between the reader and the
 * writer, so it carries an sj_ prefix to keep the library's global names prefixed. */
#ifndef STB_JSON_INTERNAL_H
#define STB_JSON_INTERNAL_H

#include <stddef.h>

/* ------------------------------------------------------------------ UTF-8 (json_parse.c) */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
size_t sj_utf8_seq(const unsigned char *s, size_t avail);

#endif
