#ifndef STB_AGENT_CORE_H
#define STB_AGENT_CORE_H
/* Placeholder: the agent's transport-independent core (protocol, commands, buffers). */
int stb_core_version(void);
#endif
