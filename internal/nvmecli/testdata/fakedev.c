// LD_PRELOAD shim for nvme-cli 2.3 / libnvme 1.3 (test only, see compat_test.go):
// makes /dev/nvmeXnY look like an NVMe namespace block device so that libnvme creates the
// namespace objects it would create with the kernel driver. Everything else libnvme reads
// (all of sysfs) is untouched. open -> an fd on "/", fstat -> S_IFBLK, NVME_IOCTL_ID -> the
// nsid from the name, admin passthru (Identify) -> zeroed data, success.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <linux/nvme_ioctl.h>
static int fake_nsid[1024];
static int fakeopen(const char *p) {
	int a, b;
	if (strncmp(p, "/dev/nvme", 9) || sscanf(p, "/dev/nvme%dn%d", &a, &b) != 2) return -1;
	int fd = ((int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open"))("/", O_RDONLY);
	if (fd >= 0 && fd < 1024) fake_nsid[fd] = b;
	return fd;
}
int open(const char *p, int f, ...) { int fd = fakeopen(p); if (fd >= 0) return fd;
	va_list ap; va_start(ap, f); int m = va_arg(ap, int); va_end(ap);
	return ((int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open"))(p, f, m); }
int open64(const char *p, int f, ...) { int fd = fakeopen(p); if (fd >= 0) return fd;
	va_list ap; va_start(ap, f); int m = va_arg(ap, int); va_end(ap);
	return ((int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open64"))(p, f, m); }
int fstat(int fd, struct stat *st) { int r = ((int (*)(int, struct stat *))dlsym(RTLD_NEXT, "fstat"))(fd, st);
	if (!r && fd >= 0 && fd < 1024 && fake_nsid[fd]) st->st_mode = S_IFBLK | 0600; return r; }
int fstat64(int fd, struct stat64 *st) { int r = ((int (*)(int, struct stat64 *))dlsym(RTLD_NEXT, "fstat64"))(fd, st);
	if (!r && fd >= 0 && fd < 1024 && fake_nsid[fd]) st->st_mode = S_IFBLK | 0600; return r; }
int close(int fd) { if (fd >= 0 && fd < 1024) fake_nsid[fd] = 0; return ((int (*)(int))dlsym(RTLD_NEXT, "close"))(fd); }
int ioctl(int fd, unsigned long req, ...) {
	va_list ap; va_start(ap, req); void *arg = va_arg(ap, void *); va_end(ap);
	if (fd >= 0 && fd < 1024 && fake_nsid[fd]) {
		if (req == NVME_IOCTL_ID) return fake_nsid[fd];
		if (req == NVME_IOCTL_ADMIN_CMD || req == NVME_IOCTL_ADMIN64_CMD) {
			struct nvme_passthru_cmd *c = arg;
			if (c->addr && c->data_len) memset((void *)(unsigned long)c->addr, 0, c->data_len);
			return 0;
		}
	}
	return ((int (*)(int, unsigned long, void *))dlsym(RTLD_NEXT, "ioctl"))(fd, req, arg);
}
