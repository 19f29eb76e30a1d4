/*
 * What config.c (the table of settings, a value into its field, the
 * defaults) and config_load.c (the YAML walk and the checks of a file)
 * share: a setting's row in the table and the way into its field.
 */
#ifndef RISKD_DAEMON_CONFIG_INT_H
#define RISKD_DAEMON_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "src/daemon/config.h"

typedef enum ConfType {
        CT_STRING,   /* any scalar, may be empty */
        CT_NAME,     /* a non-empty scalar */
        CT_BOOL,
        CT_DURATION, /* int64_t ms */
        CT_UINT,     /* uint64_t */
        CT_LIST,     /* sequence of names: char **, count at off + sizeof(char **) ... see below */
        CT_HOSTS,    /* sequence of host names, as CT_LIST; may be empty */
        CT_LOGLEVEL, /* int syslog priority */
        CT_GROUP,    /* a map of the settings named "<name>.*" */
        CT_KAFKA,    /* a map of strings */
} ConfType;

typedef struct ConfigSetting {
        const char *name;   /* "grace", "topics.alerts" */
        ConfType type;
        size_t off;         /* of the field in Config */
        size_t count_off;   /* CT_LIST: of the uint32_t count */
        const char *def;    /* the default as written in YAML; NULL: computed */
        int64_t min, max;   /* CT_UINT, CT_DURATION (ms) */
        const char *doc;
} ConfigSetting;

/* Every setting, in the order of the file's documentation (config.c). */
extern const ConfigSetting config_settings[];
extern const size_t config_nsettings;

/* The setting of a dotted name ("limits.max_keys"), or NULL. */
const ConfigSetting *config_setting_find(const char *name);

static inline void *config_field(Config *c, const ConfigSetting *s)
{
        return (char *)c + s->off;
}

/* One scalar into its field: NULL, or why the value is bad. */
const char *config_scalar_set(Config *c, const ConfigSetting *s, const char *v, size_t n, const char **hint);
/* A list setting's items (in the arena) and their count. */
void config_list_set(Config *c, const ConfigSetting *s, char **items, uint32_t n);

/* Whether s holds a word that makes a name a secret's. */
bool config_secret_word(const char *s);

#endif
