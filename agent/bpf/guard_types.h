/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The few kernel structures the exec guard reads, declared by hand with
 * preserve_access_index: clang records each field access as a CO-RE
 * relocation by name, and the loader resolves it against the running
 * kernel's BTF (/sys/kernel/btf/vmlinux). Field order and padding here do
 * not matter; names and types do. Committed instead of a generated vmlinux.h
 * so the build needs neither bpftool nor the build machine's kernel BTF.
 */
#ifndef VIGIL_GUARD_TYPES_H
#define VIGIL_GUARD_TYPES_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;
typedef __u32 dev_t;

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct file_system_type {
	const char *name;
};

struct super_block {
	dev_t s_dev;
	unsigned long s_flags;
	unsigned long s_magic;
	__u32 s_fsnotify_mask;
	struct file_system_type *s_type;
	char s_id[32];
};

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
};

struct qstr {
	const unsigned char *name;
};

struct dentry {
	struct qstr d_name;
};

struct path {
	struct dentry *dentry;
};

struct file {
	struct inode *f_inode;
	struct path f_path;
};

struct linux_binprm {
	struct file *file;
};

struct mm_struct {
	struct file *exe_file;
};

struct ns_common {
	unsigned int inum;
};

struct mnt_namespace {
	struct ns_common ns;
};

struct nsproxy {
	struct mnt_namespace *mnt_ns;
};

struct task_struct {
	struct mm_struct *mm;
	int tgid;
	struct task_struct *real_parent;
	struct nsproxy *nsproxy;
};

#pragma clang attribute pop

#endif
