/* The few math functions the agent needs (random distributions, rounding), self-contained
 * so the C targets need no libm. Accurate to about 1e-15 relative over the ranges used. */
#ifndef STB_MATH_H
#define STB_MATH_H

#include <stdint.h>

double stb_exp(double x);
double stb_log(double x);           /* x > 0; -inf-ish (-745) for x <= 0 */
double stb_pow(double x, double y); /* x > 0, or 0 for x <= 0 */
double stb_sqrt(double x);          /* 0 for x <= 0 */
double stb_cos(double x);
double stb_round(double x);         /* half away from zero */
long long stb_llround(double x);
double stb_fabs(double x);

#endif
