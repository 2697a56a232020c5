/* Mounts a tmpfs on argv[1] argv[2] times, holding each argv[3] ms; prints
 * the wall-clock time before and after each mount(2). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_REALTIME,&t);return t.tv_sec+t.tv_nsec/1e9;}
int main(int argc,char**argv){int n=atoi(argv[2]);
 for(int i=0;i<n;i++){double t0=now();if(mount("late",argv[1],"tmpfs",0,"size=1m")){perror("mount");return 1;}double t1=now();
  printf("%.6f %.6f\n",t0,t1);fflush(stdout);usleep(argc>3?atoi(argv[3])*1000:200000);umount(argv[1]);usleep(100000);} return 0;}
