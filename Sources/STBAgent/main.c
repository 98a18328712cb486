#include <stdio.h>
#include "stb_agent_core.h"
int main(void) { printf("stb-agent %d\n", stb_core_version()); return 0; }
