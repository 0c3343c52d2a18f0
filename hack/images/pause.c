/* The sandbox ("pause") container of the real node: holds the Pod's namespaces
 * open, reaps orphans, and exits on SIGTERM/SIGINT. Built statically by
 * hack/images so no registry is needed. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
  signal(SIGTERM, quit);
  signal(SIGINT, quit);
  signal(SIGCHLD, reap);
  for (;;) pause();
  return 0;
}
