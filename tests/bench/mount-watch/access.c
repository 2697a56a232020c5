/* Times argv[3] open+close of argv[1] and argv[3]/10 fork+exec of argv[2];
 * prints median and p99 in microseconds. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  const char*file=argv[1],*bin=argv[2];int n=atoi(argv[3]);
  double*v=malloc(sizeof(double)*n);
  for(int i=0;i<n;i++){double t=now();int fd=open(file,O_RDONLY);if(fd<0){perror("open");return 1;}close(fd);v[i]=now()-t;}
  qsort(v,n,sizeof(double),cmp);printf("open median %.1f us p99 %.1f us\n",v[n/2],v[n*99/100]);
  int m=n/10;
  for(int i=0;i<m;i++){double t=now();pid_t p=fork();if(!p){execl(bin,bin,(char*)0);_exit(127);}int st;waitpid(p,&st,0);v[i]=now()-t;if(!WIFEXITED(st)||WEXITSTATUS(st)){fprintf(stderr,"exec failed\n");return 1;}}
  qsort(v,m,sizeof(double),cmp);printf("exec median %.1f us p99 %.1f us\n",v[m/2],v[m*99/100]);
  return 0;}
