#ifndef ARGUS_CROARING_SHIM_H
#define ARGUS_CROARING_SHIM_H
/*
 * CRoaring (Debian's libroaring-dev, 0.2.66): compressed bitmaps of uint32. No pkg-config file
 * ships with it; the header is in the default include path. Only Ratings (BoxSet) includes this module.
 */
#include <roaring/roaring.h>

#endif
