// LD_PRELOAD shim for nvme-cli's resv-report (test only, see resv_test.go):
// /dev/nvmeXnY stats as a block device and opens as an fd on "/" that
// fstat calls a block device;
// NVME_IOCTL_ID returns Y; an I/O passthrough Reservation Report (opcode
// 0x0e) is answered with the bytes of the file $RESV_REPORT (zero-filled
// to data_len) and success; Register, Acquire and Release succeed.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
int __open64_2(const char *p, int f) { int fd = fakeopen(p); if (fd >= 0) return fd;
	return ((int (*)(const char *, int))dlsym(RTLD_NEXT, "__open64_2"))(p, f); }
int fstat(int fd, struct stat *st) { int r = ((int (*)(int, struct stat *))dlsym(RTLD_NEXT, "fstat"))(fd, st);
	if (!r && fd >= 0 && fd < 1024 && fake_nsid[fd]) st->st_mode = S_IFBLK | 0600; return r; }
int fstat64(int fd, struct stat64 *st) { int r = ((int (*)(int, struct stat64 *))dlsym(RTLD_NEXT, "fstat64"))(fd, st);
	if (!r && fd >= 0 && fd < 1024 && fake_nsid[fd]) st->st_mode = S_IFBLK | 0600; return r; }
static int isdev(const char *p) { int a, b; return !strncmp(p, "/dev/nvme", 9) && sscanf(p, "/dev/nvme%dn%d", &a, &b) == 2; }
int stat(const char *p, struct stat *st) { if (isdev(p)) { memset(st, 0, sizeof(*st)); st->st_mode = S_IFBLK | 0600; return 0; }
	return ((int (*)(const char *, struct stat *))dlsym(RTLD_NEXT, "stat"))(p, st); }
int stat64(const char *p, struct stat64 *st) { if (isdev(p)) { memset(st, 0, sizeof(*st)); st->st_mode = S_IFBLK | 0600; return 0; }
	return ((int (*)(const char *, struct stat64 *))dlsym(RTLD_NEXT, "stat64"))(p, st); }
int close(int fd) { if (fd >= 0 && fd < 1024) fake_nsid[fd] = 0; return ((int (*)(int))dlsym(RTLD_NEXT, "close"))(fd); }
int ioctl(int fd, unsigned long req, ...) {
	va_list ap; va_start(ap, req); void *arg = va_arg(ap, void *); va_end(ap);
	if (fd >= 0 && fd < 1024 && fake_nsid[fd]) {
		if (req == NVME_IOCTL_ID) return fake_nsid[fd];
		if (req == NVME_IOCTL_IO_CMD || req == NVME_IOCTL_IO64_CMD) {
			struct nvme_passthru_cmd *c = arg; /* addr and data_len sit alike in the 64-bit form */
			if (c->opcode == 0x0d || c->opcode == 0x11 || c->opcode == 0x15) return 0; /* register, acquire, release */
			if (c->opcode != 0x0e || !c->addr) return -1;
			memset((void *)(unsigned long)c->addr, 0, c->data_len);
			FILE *f = fopen(getenv("RESV_REPORT"), "rb");
			if (!f) return -1;
			fread((void *)(unsigned long)c->addr, 1, c->data_len, f);
			fclose(f);
			return 0;
		}
	}
	return ((int (*)(int, unsigned long, void *))dlsym(RTLD_NEXT, "ioctl"))(fd, req, arg);
}
