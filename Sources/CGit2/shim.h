#ifndef MIXLAB_CGIT2_SHIM_H
#define MIXLAB_CGIT2_SHIM_H
#include <git2.h>
#endif
