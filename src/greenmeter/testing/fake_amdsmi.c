/*
 * A fake AMD SMI library (libamd_smi.so) for tests without an AMD GPU.
 *
 * Built and configured by greenmeter.testing.FakeAmdSmi. The real `amdsmi` Python
 * package loads it like ROCm's library and calls the same C entry points, so the code
 * under test runs its real amdsmi path. The binding resolves every function it knows at
 * import; the functions this file does not implement are generated at build time as
 * stubs returning AMDSMI_STATUS_NOT_SUPPORTED.
 *
 * Structure layouts differ between amdsmi releases (field widths, order, string sizes).
 * This file does not hard-code them: the config carries, for each structure it fills,
 * its size and the offset and size of each field, as the installed binding's ctypes
 * definitions give them, and fields are written by name.
 *
 * Every reading is computed from a power trace (fake_trace.c, prepended at build time):
 *   - amdsmi_get_energy_count: the exact integral since t0 as a count of
 *     `counter_resolution` microjoules, plus a starting count, kept to `counter_bits`
 *     bits (so it wraps), optionally quantised to an update step; the timestamp is the
 *     CLOCK_MONOTONIC instant of that update in ns;
 *   - amdsmi_get_power_info: current_socket_power = the trace's power now (W, rounded),
 *     average_socket_power = the trailing `average_window_s` average refreshed every
 *     100 ms (W, rounded); 0xFFFF where the board does not support the field.
 * A physical board (an amdsmi "socket") holds one logical device per compute partition;
 * only one partition answers the power and energy queries unless configured otherwise.
 * Faults (an amdsmi status from a given instant, until another, for all calls or for
 * one reading) are given as times in the config.
 *
 * The config is a line-oriented text file whose path is in the environment variable
 * GREENMETER_FAKE_AMDSMI_CONFIG; it is (re)read by amdsmi_init when no other init is
 * active.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
/* trace_t, now_s(), copy_value() and the trace functions come from fake_trace.c. */

#define EXPORT __attribute__((visibility("default")))

typedef int amdsmi_status_t;
enum {
    AMDSMI_STATUS_SUCCESS = 0,
    AMDSMI_STATUS_INVAL = 1,
    AMDSMI_STATUS_NOT_SUPPORTED = 2,
    AMDSMI_STATUS_NO_PERM = 10,
    AMDSMI_STATUS_INSUFFICIENT_SIZE = 41,
    AMDSMI_STATUS_NOT_FOUND = 31,
    AMDSMI_STATUS_NOT_INIT = 32,
    AMDSMI_STATUS_DRIVER_NOT_LOADED = 34,
};

#define AMDSMI_INIT_AMD_GPUS 2u
#define AMDSMI_PROCESSOR_TYPE_AMD_GPU 1
#define NA16 0xFFFFu

#define MAX_BOARDS 64
#define MAX_PARTITIONS 8
#define MAX_DEVICES (MAX_BOARDS * MAX_PARTITIONS)
#define MAX_FAULTS 16
#define MAX_PROCS 32
#define MAX_LAYOUTS 16
#define MAX_FIELDS 32
#define STR_LEN 128

/* ---- structure layouts, from the installed binding ------------------------------------- */

typedef struct {
    char name[48];
    int offset;
    int size;
} field_t;

typedef struct {
    char name[48];
    int size;
    int n_fields;
    field_t fields[MAX_FIELDS];
} layout_t;

static layout_t g_layouts[MAX_LAYOUTS];
static int g_n_layouts = 0;

static const layout_t *find_layout(const char *name) {
    for (int i = 0; i < g_n_layouts; i++)
        if (strcmp(g_layouts[i].name, name) == 0) return &g_layouts[i];
    return NULL;
}

static const field_t *find_field(const layout_t *l, const char *name) {
    for (int i = 0; l && i < l->n_fields; i++)
        if (strcmp(l->fields[i].name, name) == 0) return &l->fields[i];
    return NULL;
}

/* Write an unsigned integer into a field of 1, 2, 4 or 8 bytes (absent field: nothing). */
static void put_uint(void *base, const layout_t *l, const char *field, uint64_t v) {
    const field_t *f = find_field(l, field);
    if (f == NULL) return;
    unsigned char *p = (unsigned char *)base + f->offset;
    switch (f->size) {
        case 1: { uint8_t x = (uint8_t)v; memcpy(p, &x, 1); break; }
        case 2: { uint16_t x = (uint16_t)v; memcpy(p, &x, 2); break; }
        case 4: { uint32_t x = (uint32_t)v; memcpy(p, &x, 4); break; }
        case 8: memcpy(p, &v, 8); break;
        default: break;
    }
}

/* Write a NUL-terminated string into a char-array field, truncated to fit. */
static void put_str(void *base, const layout_t *l, const char *field, const char *s) {
    const field_t *f = find_field(l, field);
    if (f == NULL || f->size <= 0) return;
    char *p = (char *)base + f->offset;
    strncpy(p, s, (size_t)f->size - 1);
    p[f->size - 1] = '\0';
}

/* ---- emulated state -------------------------------------------------------------------- */

enum { SCOPE_ALL = 0, SCOPE_ENERGY = 1, SCOPE_POWER = 2 };

typedef struct {
    double at;
    double until; /* <= at: forever */
    int code;
    int scope;
} fault_t;

typedef struct fake_board {
    int magic;
    int index;
    char name[STR_LEN];
    char uuid[STR_LEN];
    char vbios[STR_LEN];
    uint64_t serial;
    uint32_t device_id;
    uint32_t rev_id;
    uint32_t subsystem_id;
    uint32_t oam_id;
    uint32_t compute_units;
    uint64_t gfx_version;
    uint32_t domain, bus, dev, fn;
    char compute_partition[16];
    char memory_partition[16];
    int n_partitions;
    int metrics_partition; /* -1: every partition answers with the board's readings */
    int energy_supported;
    int current_supported;
    int average_supported;
    double average_window_s;
    float resolution_uj;
    int counter_bits;
    uint64_t counter_start;
    double counter_step_s;
    double power_cap_w;
    trace_t trace;
    int n_faults;
    fault_t faults[MAX_FAULTS];
    int n_procs;
    uint32_t proc_pid[MAX_PROCS];
    uint64_t proc_mem[MAX_PROCS];
    int first_device; /* index of its partition 0 in g_devices */
} fake_board_t;

typedef struct {
    int magic;
    int index;     /* position in amdsmi's enumeration */
    int partition; /* compute partition id on its board */
    uint32_t node_id;
    fake_board_t *board;
} fake_device_t;

#define BOARD_MAGIC 0x616d6462
#define DEVICE_MAGIC 0x616d6464

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_refcount = 0;
static int g_n_boards = 0;
static int g_n_devices = 0;
static fake_board_t g_boards[MAX_BOARDS];
static fake_device_t g_devices[MAX_DEVICES];
static char g_driver_version[STR_LEN] = "6.8.5";
static char g_driver_date[STR_LEN] = "2015/01/01 00:00";
static int g_init_error = 0;
static uint32_t g_node_override[MAX_DEVICES];

static void free_board(fake_board_t *b) {
    trace_free(&b->trace);
    memset(b, 0, sizeof(*b));
}

static void reset_state(void) {
    for (int i = 0; i < MAX_BOARDS; i++) free_board(&g_boards[i]);
    memset(g_devices, 0, sizeof(g_devices));
    g_n_boards = g_n_devices = 0;
    g_n_layouts = 0;
    g_init_error = 0;
    memset(g_node_override, 0, sizeof(g_node_override));
}

/* ---- config parsing ------------------------------------------------------------------ */

static int scope_from_name(const char *s) {
    if (strncmp(s, "energy", 6) == 0) return SCOPE_ENERGY;
    if (strncmp(s, "power", 5) == 0) return SCOPE_POWER;
    return SCOPE_ALL;
}

static void board_defaults(fake_board_t *b, int index) {
    memset(b, 0, sizeof(*b));
    b->magic = BOARD_MAGIC;
    b->index = index;
    b->n_partitions = 1;
    b->energy_supported = b->current_supported = 1;
    b->average_window_s = 1.0;
    b->resolution_uj = 15.3f;
    b->counter_bits = 64;
    b->power_cap_w = 750.0;
    b->trace.repeat = 1;
    b->subsystem_id = 0x74a1;
    b->device_id = 0x74a1;
    b->gfx_version = 0x942;
    b->compute_units = 304;
}

/* Returns AMDSMI_STATUS_SUCCESS or an error. Called with g_lock held. */
static amdsmi_status_t load_config(void) {
    const char *path = getenv("GREENMETER_FAKE_AMDSMI_CONFIG");
    reset_state();
    if (path == NULL || path[0] == '\0') return AMDSMI_STATUS_DRIVER_NOT_LOADED;
    FILE *f = fopen(path, "r");
    if (f == NULL) return AMDSMI_STATUS_DRIVER_NOT_LOADED;
    char line[1024];
    fake_board_t *b = NULL;
    layout_t *l = NULL;
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        char *sp = strchr(line, ' ');
        char *val = sp ? sp + 1 : line + n;
        if (sp) *sp = '\0';
        const char *key = line;
        if (strcmp(key, "init_error") == 0) g_init_error = atoi(val);
        else if (strcmp(key, "driver_version") == 0) copy_value(g_driver_version, val, STR_LEN);
        else if (strcmp(key, "driver_date") == 0) copy_value(g_driver_date, val, STR_LEN);
        else if (strcmp(key, "layout") == 0) {
            if (g_n_layouts >= MAX_LAYOUTS) continue;
            l = &g_layouts[g_n_layouts++];
            memset(l, 0, sizeof(*l));
            char name[48] = "";
            if (sscanf(val, "%47s %d", name, &l->size) == 2) copy_value(l->name, name, 48);
        } else if (strcmp(key, "field") == 0) {
            if (l == NULL || l->n_fields >= MAX_FIELDS) continue;
            field_t *fd = &l->fields[l->n_fields];
            char name[48] = "";
            if (sscanf(val, "%47s %d %d", name, &fd->offset, &fd->size) == 3) {
                copy_value(fd->name, name, 48);
                l->n_fields++;
            }
        } else if (strcmp(key, "board") == 0) {
            if (g_n_boards >= MAX_BOARDS) break;
            b = &g_boards[g_n_boards];
            board_defaults(b, g_n_boards);
            g_n_boards++;
        } else if (strcmp(key, "node") == 0) {
            unsigned int dev = 0, node = 0;
            if (sscanf(val, "%u %u", &dev, &node) == 2 && dev < MAX_DEVICES)
                g_node_override[dev] = node;
        } else if (b == NULL) {
            continue;
        } else if (strcmp(key, "name") == 0) copy_value(b->name, val, STR_LEN);
        else if (strcmp(key, "uuid") == 0) copy_value(b->uuid, val, STR_LEN);
        else if (strcmp(key, "serial") == 0) b->serial = strtoull(val, NULL, 16);
        else if (strcmp(key, "device_id") == 0) b->device_id = (uint32_t)strtoul(val, NULL, 0);
        else if (strcmp(key, "gfx_version") == 0) b->gfx_version = strtoull(val, NULL, 0);
        else if (strcmp(key, "compute_units") == 0) b->compute_units = (uint32_t)atoi(val);
        else if (strcmp(key, "oam_id") == 0) b->oam_id = (uint32_t)atoi(val);
        else if (strcmp(key, "bdf") == 0)
            sscanf(val, "%x:%x:%x.%x", &b->domain, &b->bus, &b->dev, &b->fn);
        else if (strcmp(key, "compute_partition") == 0)
            copy_value(b->compute_partition, val, sizeof b->compute_partition);
        else if (strcmp(key, "memory_partition") == 0)
            copy_value(b->memory_partition, val, sizeof b->memory_partition);
        else if (strcmp(key, "partitions") == 0) {
            b->n_partitions = atoi(val);
            if (b->n_partitions < 1) b->n_partitions = 1;
            if (b->n_partitions > MAX_PARTITIONS) b->n_partitions = MAX_PARTITIONS;
        } else if (strcmp(key, "metrics_partition") == 0) b->metrics_partition = atoi(val);
        else if (strcmp(key, "energy_supported") == 0) b->energy_supported = atoi(val);
        else if (strcmp(key, "current_supported") == 0) b->current_supported = atoi(val);
        else if (strcmp(key, "average_supported") == 0) b->average_supported = atoi(val);
        else if (strcmp(key, "average_window_s") == 0) b->average_window_s = strtod(val, NULL);
        else if (strcmp(key, "resolution_uj") == 0) b->resolution_uj = strtof(val, NULL);
        else if (strcmp(key, "counter_bits") == 0) b->counter_bits = atoi(val);
        else if (strcmp(key, "counter_start") == 0) b->counter_start = strtoull(val, NULL, 10);
        else if (strcmp(key, "counter_step_s") == 0) b->counter_step_s = strtod(val, NULL);
        else if (strcmp(key, "power_cap_w") == 0) b->power_cap_w = strtod(val, NULL);
        else if (strcmp(key, "t0") == 0) b->trace.t0 = strtod(val, NULL);
        else if (strcmp(key, "repeat") == 0) b->trace.repeat = atoi(val);
        else if (strcmp(key, "steps") == 0) trace_alloc(&b->trace, atoi(val));
        else if (strcmp(key, "step") == 0) trace_add_step(&b->trace, val);
        else if (strcmp(key, "fault") == 0) {
            if (b->n_faults < MAX_FAULTS) {
                fault_t *ft = &b->faults[b->n_faults];
                char scope[32] = "all";
                if (sscanf(val, "%lf %lf %d %31s", &ft->at, &ft->until, &ft->code, scope) >= 3) {
                    ft->scope = scope_from_name(scope);
                    b->n_faults++;
                }
            }
        } else if (strcmp(key, "process") == 0) {
            if (b->n_procs < MAX_PROCS) {
                char *end = NULL;
                b->proc_pid[b->n_procs] = (uint32_t)strtoul(val, &end, 10);
                b->proc_mem[b->n_procs] = strtoull(end, NULL, 10);
                b->n_procs++;
            }
        }
    }
    fclose(f);
    for (int i = 0; i < g_n_boards; i++) {
        fake_board_t *g = &g_boards[i];
        trace_default(&g->trace);
        g->first_device = g_n_devices;
        for (int k = 0; k < g->n_partitions && g_n_devices < MAX_DEVICES; k++) {
            fake_device_t *d = &g_devices[g_n_devices];
            d->magic = DEVICE_MAGIC;
            d->index = g_n_devices;
            d->partition = k;
            d->node_id = (uint32_t)(g_n_devices + 1); /* node 0 is the CPU */
            d->board = g;
            g_n_devices++;
        }
    }
    /* Optional: the KFD node ids, i.e. the order in which the ROCm runtime numbers them. */
    for (int i = 0; i < g_n_devices; i++)
        if (g_node_override[i] != 0) g_devices[i].node_id = g_node_override[i];
    return AMDSMI_STATUS_SUCCESS;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static fake_device_t *as_device(void *h) {
    fake_device_t *d = h;
    if (d == NULL || d < g_devices || d >= g_devices + MAX_DEVICES || d->magic != DEVICE_MAGIC)
        return NULL;
    return d;
}

static fake_board_t *as_board(void *h) {
    fake_board_t *b = h;
    if (b == NULL || b < g_boards || b >= g_boards + MAX_BOARDS || b->magic != BOARD_MAGIC)
        return NULL;
    return b;
}

/* The fault active now for this board and scope, or success. */
static amdsmi_status_t fault_now(const fake_board_t *b, int scope, double t) {
    amdsmi_status_t ret = AMDSMI_STATUS_SUCCESS;
    double latest = -1e300;
    for (int i = 0; i < b->n_faults; i++) {
        const fault_t *f = &b->faults[i];
        int active = t >= f->at && (f->until <= f->at || t < f->until);
        if (active && (f->scope == SCOPE_ALL || f->scope == scope) && f->at >= latest) {
            ret = f->code;
            latest = f->at;
        }
    }
    return ret;
}

/* Whether this logical device answers the power and energy queries of its board. */
static int answers_metrics(const fake_device_t *d) {
    return d->board->metrics_partition < 0 || d->partition == d->board->metrics_partition;
}

#define CHECK_INIT()                                            \
    do {                                                        \
        if (g_refcount <= 0) return AMDSMI_STATUS_NOT_INIT;      \
    } while (0)

#define GET_DEVICE(var, h)                                      \
    CHECK_INIT();                                               \
    fake_device_t *var = as_device(h);                          \
    if (var == NULL) return AMDSMI_STATUS_INVAL;                \
    do {                                                        \
        amdsmi_status_t f_ = fault_now(var->board, SCOPE_ALL, now_s()); \
        if (f_ != AMDSMI_STATUS_SUCCESS) return f_;             \
    } while (0)

static amdsmi_status_t copy_string(char *dst, size_t len, const char *src) {
    if (dst == NULL) return AMDSMI_STATUS_INVAL;
    if (strlen(src) + 1 > len) return AMDSMI_STATUS_INSUFFICIENT_SIZE;
    memcpy(dst, src, strlen(src) + 1);
    return AMDSMI_STATUS_SUCCESS;
}

/* ---- initialisation ----------------------------------------------------------------------- */

EXPORT amdsmi_status_t amdsmi_init(uint64_t flags) {
    pthread_mutex_lock(&g_lock);
    amdsmi_status_t ret = AMDSMI_STATUS_SUCCESS;
    if (g_refcount == 0) {
        ret = load_config();
        if (ret == AMDSMI_STATUS_SUCCESS && g_init_error != 0) ret = g_init_error;
        if (ret == AMDSMI_STATUS_SUCCESS && !(flags & AMDSMI_INIT_AMD_GPUS)) {
            g_n_boards = g_n_devices = 0; /* asked for CPUs only: no GPU listed */
        }
    }
    if (ret == AMDSMI_STATUS_SUCCESS) g_refcount++;
    pthread_mutex_unlock(&g_lock);
    return ret;
}

EXPORT amdsmi_status_t amdsmi_shut_down(void) {
    pthread_mutex_lock(&g_lock);
    amdsmi_status_t ret = AMDSMI_STATUS_SUCCESS;
    if (g_refcount <= 0) ret = AMDSMI_STATUS_NOT_INIT;
    else g_refcount--;
    pthread_mutex_unlock(&g_lock);
    return ret;
}

EXPORT amdsmi_status_t amdsmi_status_code_to_string(amdsmi_status_t status, const char **str) {
    if (str == NULL) return AMDSMI_STATUS_INVAL;
    switch (status) {
        case AMDSMI_STATUS_SUCCESS: *str = "Success"; break;
        case AMDSMI_STATUS_NOT_SUPPORTED: *str = "Feature not supported"; break;
        case AMDSMI_STATUS_NO_PERM: *str = "Permission Denied"; break;
        case AMDSMI_STATUS_DRIVER_NOT_LOADED: *str = "Driver not loaded"; break;
        default: *str = "An error occurred"; break;
    }
    return AMDSMI_STATUS_SUCCESS;
}

/* ---- enumeration -------------------------------------------------------------------------- */

EXPORT amdsmi_status_t amdsmi_get_socket_handles(uint32_t *count, void **handles) {
    CHECK_INIT();
    if (count == NULL) return AMDSMI_STATUS_INVAL;
    if (handles != NULL) {
        uint32_t n = *count < (uint32_t)g_n_boards ? *count : (uint32_t)g_n_boards;
        for (uint32_t i = 0; i < n; i++) handles[i] = &g_boards[i];
    }
    *count = (uint32_t)g_n_boards;
    return AMDSMI_STATUS_SUCCESS;
}

EXPORT amdsmi_status_t amdsmi_get_socket_info(void *socket, size_t len, char *name) {
    CHECK_INIT();
    fake_board_t *b = as_board(socket);
    if (b == NULL || name == NULL) return AMDSMI_STATUS_INVAL;
    char text[32];
    snprintf(text, sizeof text, "%04X:%02X:%02X", b->domain, b->bus, b->dev);
    return copy_string(name, len, text);
}

EXPORT amdsmi_status_t amdsmi_get_processor_handles(void *socket, uint32_t *count, void **handles) {
    CHECK_INIT();
    fake_board_t *b = as_board(socket);
    if (b == NULL || count == NULL) return AMDSMI_STATUS_INVAL;
    uint32_t total = (uint32_t)b->n_partitions;
    if (handles != NULL) {
        uint32_t n = *count < total ? *count : total;
        for (uint32_t i = 0; i < n; i++) handles[i] = &g_devices[b->first_device + (int)i];
    }
    *count = total;
    return AMDSMI_STATUS_SUCCESS;
}

EXPORT amdsmi_status_t amdsmi_get_processor_type(void *h, uint32_t *type) {
    CHECK_INIT();
    if (as_device(h) == NULL || type == NULL) return AMDSMI_STATUS_INVAL;
    *type = AMDSMI_PROCESSOR_TYPE_AMD_GPU;
    return AMDSMI_STATUS_SUCCESS;
}

/* ---- identity ------------------------------------------------------------------------------- */

EXPORT amdsmi_status_t amdsmi_get_gpu_device_uuid(void *h, uint32_t *len, char *uuid) {
    GET_DEVICE(d, h);
    if (len == NULL || uuid == NULL || *len < 38) return AMDSMI_STATUS_INVAL;
    return copy_string(uuid, *len, d->board->uuid);
}

static uint32_t function_of(const fake_device_t *d) {
    return (d->board->fn + (uint32_t)d->partition) & 0x7u;
}

EXPORT amdsmi_status_t amdsmi_get_gpu_device_bdf(void *h, uint64_t *bdf) {
    GET_DEVICE(d, h);
    if (bdf == NULL) return AMDSMI_STATUS_INVAL;
    const fake_board_t *b = d->board;
    *bdf = ((uint64_t)b->domain << 16) | ((uint64_t)(b->bus & 0xff) << 8) |
           ((uint64_t)(b->dev & 0x1f) << 3) | function_of(d);
    return AMDSMI_STATUS_SUCCESS;
}

EXPORT amdsmi_status_t amdsmi_get_gpu_bdf_id(void *h, uint64_t *bdfid) {
    GET_DEVICE(d, h);
    if (bdfid == NULL) return AMDSMI_STATUS_INVAL;
    const fake_board_t *b = d->board;
    *bdfid = ((uint64_t)b->domain << 32) | ((uint64_t)(d->partition & 0xf) << 28) |
             ((uint64_t)(b->bus & 0xff) << 8) | ((uint64_t)(b->dev & 0x1f) << 3) | function_of(d);
    return AMDSMI_STATUS_SUCCESS;
}

EXPORT amdsmi_status_t amdsmi_get_gpu_asic_info(void *h, void *info) {
    GET_DEVICE(d, h);
    const layout_t *l = find_layout("asic_info");
    if (info == NULL) return AMDSMI_STATUS_INVAL;
    if (l == NULL) return AMDSMI_STATUS_NOT_SUPPORTED;
    const fake_board_t *b = d->board;
    char serial[32];
    snprintf(serial, sizeof serial, "%016llX", (unsigned long long)b->serial);
    memset(info, 0, (size_t)l->size);
    put_str(info, l, "market_name", b->name);
    put_uint(info, l, "vendor_id", 0x1002);
    put_str(info, l, "vendor_name", "Advanced Micro Devices Inc. [AMD/ATI]");
    put_uint(info, l, "subvendor_id", 0x1002);
    put_uint(info, l, "device_id", b->device_id);
    put_uint(info, l, "rev_id", b->rev_id);
    put_str(info, l, "asic_serial", serial);
    put_uint(info, l, "oam_id", b->oam_id);
    put_uint(info, l, "num_of_compute_units", b->compute_units / (uint32_t)b->n_partitions);
    put_uint(info, l, "target_graphics_version", b->gfx_version);
    put_uint(info, l, "subsystem_id", b->subsystem_id);
    return AMDSMI_STATUS_SUCCESS;
}

EXPORT amdsmi_status_t amdsmi_get_gpu_kfd_info(void *h, void *info) {
    GET_DEVICE(d, h);
    const layout_t *l = find_layout("kfd_info");
    if (info == NULL) return AMDSMI_STATUS_INVAL;
    if (l == NULL) return AMDSMI_STATUS_NOT_SUPPORTED;
    memset(info, 0, (size_t)l->size);
    put_uint(info, l, "kfd_id", 0x1000u + d->node_id);
    put_uint(info, l, "node_id", d->node_id);
    put_uint(info, l, "current_partition_id", (uint32_t)d->partition);
    return AMDSMI_STATUS_SUCCESS;
}

EXPORT amdsmi_status_t amdsmi_get_gpu_enumeration_info(void *h, void *info) {
    GET_DEVICE(d, h);
    const layout_t *l = find_layout("enumeration_info");
    if (info == NULL) return AMDSMI_STATUS_INVAL;
    if (l == NULL) return AMDSMI_STATUS_NOT_SUPPORTED;
    uint32_t smallest = UINT32_MAX;
    for (int i = 0; i < g_n_devices; i++)
        if (g_devices[i].node_id < smallest) smallest = g_devices[i].node_id;
    char hip_uuid[64];
    snprintf(hip_uuid, sizeof hip_uuid, "GPU-%016llx", (unsigned long long)d->board->serial);
    memset(info, 0, (size_t)l->size);
    put_uint(info, l, "drm_card", (uint32_t)d->index);
    put_uint(info, l, "drm_render", 128u + (uint32_t)d->index);
    put_uint(info, l, "hsa_id", d->node_id);
    put_uint(info, l, "hip_id", d->node_id - smallest);
    put_str(info, l, "hip_uuid", hip_uuid);
    return AMDSMI_STATUS_SUCCESS;
}

EXPORT amdsmi_status_t amdsmi_get_gpu_compute_partition(void *h, char *out, uint32_t len) {
    GET_DEVICE(d, h);
    if (d->board->compute_partition[0] == '\0') return AMDSMI_STATUS_NOT_SUPPORTED;
    return copy_string(out, len, d->board->compute_partition);
}

EXPORT amdsmi_status_t amdsmi_get_gpu_memory_partition(void *h, char *out, uint32_t len) {
    GET_DEVICE(d, h);
    if (d->board->memory_partition[0] == '\0') return AMDSMI_STATUS_NOT_SUPPORTED;
    return copy_string(out, len, d->board->memory_partition);
}

EXPORT amdsmi_status_t amdsmi_get_gpu_driver_info(void *h, void *info) {
    GET_DEVICE(d, h);
    (void)d;
    const layout_t *l = find_layout("driver_info");
    if (info == NULL) return AMDSMI_STATUS_INVAL;
    if (l == NULL) return AMDSMI_STATUS_NOT_SUPPORTED;
    memset(info, 0, (size_t)l->size);
    put_str(info, l, "driver_name", "amdgpu");
    put_str(info, l, "driver_version", g_driver_version);
    put_str(info, l, "driver_date", g_driver_date);
    return AMDSMI_STATUS_SUCCESS;
}

EXPORT amdsmi_status_t amdsmi_get_gpu_process_list(void *h, uint32_t *max, void *list) {
    GET_DEVICE(d, h);
    const layout_t *l = find_layout("proc_info");
    if (max == NULL) return AMDSMI_STATUS_INVAL;
    if (l == NULL) return AMDSMI_STATUS_NOT_SUPPORTED;
    const fake_board_t *b = d->board;
    uint32_t n = (uint32_t)b->n_procs;
    if (list != NULL) {
        uint32_t fill = *max < n ? *max : n;
        for (uint32_t i = 0; i < fill; i++) {
            void *entry = (char *)list + (size_t)i * (size_t)l->size;
            memset(entry, 0, (size_t)l->size);
            put_str(entry, l, "name", "python");
            put_uint(entry, l, "pid", b->proc_pid[i]);
            put_uint(entry, l, "mem", b->proc_mem[i]);
        }
        if (fill < n) {
            *max = n;
            return AMDSMI_STATUS_INSUFFICIENT_SIZE;
        }
    }
    *max = n;
    return AMDSMI_STATUS_SUCCESS;
}

/* ---- power and energy ----------------------------------------------------------------------- */

EXPORT amdsmi_status_t amdsmi_get_power_cap_info(void *h, uint32_t sensor, void *info) {
    GET_DEVICE(d, h);
    (void)sensor;
    const layout_t *l = find_layout("power_cap_info");
    if (info == NULL) return AMDSMI_STATUS_INVAL;
    if (l == NULL) return AMDSMI_STATUS_NOT_SUPPORTED;
    uint64_t cap_uw = (uint64_t)llround(d->board->power_cap_w * 1e6);
    memset(info, 0, (size_t)l->size);
    put_uint(info, l, "power_cap", cap_uw);
    put_uint(info, l, "default_power_cap", cap_uw);
    put_uint(info, l, "dpm_cap", 2100);
    put_uint(info, l, "min_power_cap", cap_uw / 2);
    put_uint(info, l, "max_power_cap", cap_uw);
    return AMDSMI_STATUS_SUCCESS;
}

EXPORT amdsmi_status_t amdsmi_get_power_info(void *h, void *info) {
    GET_DEVICE(d, h);
    const layout_t *l = find_layout("power_info");
    if (info == NULL) return AMDSMI_STATUS_INVAL;
    if (l == NULL) return AMDSMI_STATUS_NOT_SUPPORTED;
    double t = now_s();
    const fake_board_t *b = d->board;
    amdsmi_status_t f = fault_now(b, SCOPE_POWER, t);
    if (f != AMDSMI_STATUS_SUCCESS) return f;
    if (!answers_metrics(d)) return AMDSMI_STATUS_NOT_SUPPORTED;
    memset(info, 0, (size_t)l->size);
    uint64_t current = NA16, average = NA16;
    if (b->current_supported) current = (uint64_t)llround(trace_power_w(&b->trace, t));
    if (b->average_supported) /* trailing average, refreshed every 100 ms */
        average = (uint64_t)llround(trace_average_w(&b->trace, t, b->average_window_s, 0.1));
    put_uint(info, l, "socket_power", current != NA16 ? current : average);
    put_uint(info, l, "current_socket_power", current);
    put_uint(info, l, "average_socket_power", average);
    put_uint(info, l, "gfx_voltage", NA16);
    put_uint(info, l, "soc_voltage", NA16);
    put_uint(info, l, "mem_voltage", NA16);
    put_uint(info, l, "power_limit", (uint64_t)llround(b->power_cap_w));
    return AMDSMI_STATUS_SUCCESS;
}

/* amdsmi 6.4 reads power through this variant, with a sensor index. */
EXPORT amdsmi_status_t amdsmi_get_power_info_v2(void *h, uint32_t sensor, void *info) {
    (void)sensor;
    return amdsmi_get_power_info(h, info);
}

EXPORT amdsmi_status_t amdsmi_get_energy_count(void *h, uint64_t *energy, float *resolution,
                                                uint64_t *timestamp) {
    GET_DEVICE(d, h);
    if (energy == NULL || timestamp == NULL) return AMDSMI_STATUS_INVAL;
    double t = now_s();
    const fake_board_t *b = d->board;
    amdsmi_status_t f = fault_now(b, SCOPE_ENERGY, t);
    if (f != AMDSMI_STATUS_SUCCESS) return f;
    if (!b->energy_supported || !answers_metrics(d)) return AMDSMI_STATUS_NOT_SUPPORTED;
    t = trace_quantise(&b->trace, t, b->counter_step_s);
    double res = (double)b->resolution_uj;
    uint64_t counts = (uint64_t)floor(trace_cumulative_j(&b->trace, t) * 1e6 / res);
    uint64_t value = b->counter_start + counts; /* wraps at 2^64 like the real counter */
    if (b->counter_bits > 0 && b->counter_bits < 64) value &= ((uint64_t)1 << b->counter_bits) - 1;
    *energy = value;
    if (resolution != NULL) *resolution = b->resolution_uj;
    *timestamp = (uint64_t)llround(t * 1e9);
    return AMDSMI_STATUS_SUCCESS;
}
