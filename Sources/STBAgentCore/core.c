#include "stb_agent_core.h"
int stb_core_version(void) { return 1; }
