#ifndef MIXLAB_CGIT2_SHIM_H
#define MIXLAB_CGIT2_SHIM_H
#include <git2.h>

/// Makes libgit2 fsync objects, refs and the index it writes (git_libgit2_opts is variadic,
/// which Swift cannot call).
static inline int mixlab_git_enable_fsync(void) {
  return git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1);
}
#endif
