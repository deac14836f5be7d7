#define _GNU_SOURCE
#include "mixlab_shims.h"
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

int mixlab_start_writeback(int fd, int64_t offset, int64_t length) {
#if defined(__linux__)
  return sync_file_range(fd, (off64_t)offset, (off64_t)length, SYNC_FILE_RANGE_WRITE);
#else
  (void)fd; (void)offset; (void)length;
  return 0;
#endif
}

static int64_t read_status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  size_t n = strlen(field);
  long long kb = 0;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, field, n) == 0) {
      sscanf(line + n, "%lld", &kb);
      break;
    }
  }
  fclose(f);
  return (int64_t)kb * 1024;
}

int64_t mixlab_peak_rss_bytes(void) { return read_status_kb("VmHWM:"); }
int64_t mixlab_current_rss_bytes(void) { return read_status_kb("VmRSS:"); }

#include <errno.h>
int mixlab_open_direct(const char *path) {
#if defined(__linux__)
  return open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
#else
  (void)path;
  errno = ENOTSUP;
  return -1;
#endif
}
