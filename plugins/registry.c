/* Every plugin compiled into the agent, in one explicit array: nothing is generated. */
#include "plugins/in_journald.h"
#include "plugins/in_tail.h"
#include "plugins/out_kafka.h"
#include "plugins/plugin.h"

#include <string.h>

const struct plugin *const plugin_registry[] = {
    &in_tail_plugin,
    &in_journald_plugin,
    &out_kafka_plugin,
};

const size_t plugin_registry_len = sizeof(plugin_registry) / sizeof(plugin_registry[0]);

/* The variants of a source's `type:`, in the order of the registry. */
const struct sl_conf_section *const plugin_input_sections[] = {
    &in_tail_section,
    &in_journald_section,
    NULL,
};

const struct plugin *plugin_find(enum plugin_kind kind, const char *name)
{
    for (size_t i = 0; i < plugin_registry_len; i++)
        if (plugin_registry[i]->kind == kind && strcmp(plugin_registry[i]->name, name) == 0)
            return plugin_registry[i];
    return NULL;
}

const struct plugin *plugin_by_section(const struct sl_conf_section *section)
{
    for (size_t i = 0; i < plugin_registry_len; i++)
        if (plugin_registry[i]->section == section)
            return plugin_registry[i];
    return NULL;
}
