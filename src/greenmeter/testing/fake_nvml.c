/*
 * A fake NVIDIA Management Library (libnvidia-ml.so.1) for tests without a GPU.
 *
 * Built and configured by greenmeter.testing.FakeNvml. The real pynvml module loads it
 * like the driver's library and calls the same C entry points with the same structures,
 * so the code under test runs its real NVML path.
 *
 * Every reading is computed from a piecewise-constant power trace anchored at a
 * CLOCK_MONOTONIC instant t0 (the clock behind Python's time.monotonic()):
 *   - nvmlDeviceGetTotalEnergyConsumption: the exact integral since t0 in mJ, plus an
 *     offset ("energy since driver load"), optionally quantised to an update step, and
 *     optionally slow (call_latency_s: the value is taken half-way through the call);
 *   - field NVML_FI_DEV_POWER_INSTANT (186): the trace's power now, in mW;
 *   - nvmlDeviceGetPowerUsage: the trailing 1 s average, refreshed every 100 ms, in mW
 *     (what Ampere and newer boards report).
 * Faults (an NVML error code from a given instant on, for all calls or for one metric)
 * are given as times in the config, so no live reconfiguration is needed.
 *
 * The config is a line-oriented text file whose path is in the environment variable
 * GREENMETER_FAKE_NVML_CONFIG; it is (re)read by nvmlInit when no other init is active.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_ALREADY_INITIALIZED = 5,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_INSUFFICIENT_POWER = 8,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_TIMEOUT = 10,
    NVML_ERROR_IRQ_ISSUE = 11,
    NVML_ERROR_LIBRARY_NOT_FOUND = 12,
    NVML_ERROR_FUNCTION_NOT_FOUND = 13,
    NVML_ERROR_CORRUPTED_INFOROM = 14,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_RESET_REQUIRED = 16,
    NVML_ERROR_OPERATING_SYSTEM = 17,
    NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18,
    NVML_ERROR_IN_USE = 19,
    NVML_ERROR_MEMORY = 20,
    NVML_ERROR_NO_DATA = 21,
    NVML_ERROR_UNKNOWN = 999,
};

#define NVML_FI_DEV_POWER_INSTANT 186
#define NVML_VALUE_TYPE_UNSIGNED_INT 1

#define MAX_GPUS 64
#define MAX_MIG 8
#define MAX_FAULTS 16
#define MAX_PROCS 64
#define STR_LEN 96

/* ---- ABI structures (layouts as in nvml.h / pynvml) -------------------------------- */

typedef struct {
    char busIdLegacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned long long total;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_t;

typedef struct {
    unsigned int version;
    unsigned long long total;
    unsigned long long reserved;
    unsigned long long free;
    unsigned long long used;
} nvmlMemory_v2_t;

typedef struct {
    unsigned int gpu;
    unsigned int memory;
} nvmlUtilization_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId;
    unsigned int computeInstanceId;
} nvmlProcessInfo_t;

typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    signed long long sllVal;
    signed int siVal;
    unsigned short usVal;
} nvmlValue_t;

typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;
    long long latencyUsec;
    int valueType;
    nvmlReturn_t nvmlReturn;
    nvmlValue_t value;
} nvmlFieldValue_t;

/* ---- emulated state -------------------------------------------------------------- */

enum { SCOPE_ALL = 0, SCOPE_ENERGY = 1, SCOPE_INSTANT = 2, SCOPE_POWER_USAGE = 3 };

typedef struct {
    double at;
    double until; /* the fault ends here (+inf: never) */
    int code;
    int scope;
} fault_t;

typedef struct fake_device {
    int magic;
    int index;
    int is_mig;
    struct fake_device *parent;
    char name[STR_LEN];
    char uuid[STR_LEN];
    char pci_bus_id[STR_LEN];
    unsigned int pci_device_id;
    unsigned int architecture;
    unsigned int power_limit_mw;
    unsigned long long memory_total;
    unsigned long long memory_used;
    unsigned int util_gpu;
    unsigned int util_mem;
    int energy_supported;
    int instant_supported;
    int power_usage_supported;
    double energy_offset_mj;
    double counter_step_s;
    double call_latency_s;
    trace_t trace;
    int n_procs;
    unsigned int proc_pid[MAX_PROCS];
    unsigned long long proc_mem[MAX_PROCS];
    int n_faults;
    fault_t faults[MAX_FAULTS];
    int mig_mode;
    int n_mig;
    struct fake_device *mig[MAX_MIG];
} fake_device_t;

#define DEVICE_MAGIC 0x6e766d6c

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_refcount = 0;
static int g_count = 0;
static fake_device_t g_devices[MAX_GPUS];
static fake_device_t g_mig_devices[MAX_GPUS * MAX_MIG];
static int g_mig_used = 0;
static char g_driver_version[STR_LEN] = "550.90.07";
static char g_nvml_version[STR_LEN] = "12.550.90.07";
static int g_cuda_version = 12040;
static int g_init_error = 0;

static void free_device(fake_device_t *d) {
    trace_free(&d->trace);
    memset(d, 0, sizeof(*d));
}

static void reset_state(void) {
    for (int i = 0; i < MAX_GPUS; i++) free_device(&g_devices[i]);
    memset(g_mig_devices, 0, sizeof(g_mig_devices));
    g_mig_used = 0;
    g_count = 0;
    g_init_error = 0;
}

/* ---- config parsing ------------------------------------------------------------------ */

static int scope_from_name(const char *s) {
    if (strcmp(s, "energy") == 0) return SCOPE_ENERGY;
    if (strcmp(s, "instant") == 0) return SCOPE_INSTANT;
    if (strcmp(s, "power_usage") == 0) return SCOPE_POWER_USAGE;
    return SCOPE_ALL;
}

/* Returns NVML_SUCCESS or an error code. Called with g_lock held. */
static nvmlReturn_t load_config(void) {
    const char *path = getenv("GREENMETER_FAKE_NVML_CONFIG");
    reset_state();
    if (path == NULL || path[0] == '\0') return NVML_ERROR_DRIVER_NOT_LOADED;
    FILE *f = fopen(path, "r");
    if (f == NULL) return NVML_ERROR_DRIVER_NOT_LOADED;
    char line[512];
    fake_device_t *d = NULL;
    while (fgets(line, sizeof line, f)) {
        char *sp = strchr(line, ' ');
        char *val = sp ? sp + 1 : line + strlen(line);
        if (sp) *sp = '\0';
        const char *key = line;
        size_t kl = strlen(key);
        if (kl > 0 && key[kl - 1] == '\n') line[kl - 1] = '\0';
        if (strcmp(key, "driver_version") == 0) copy_value(g_driver_version, val, STR_LEN);
        else if (strcmp(key, "nvml_version") == 0) copy_value(g_nvml_version, val, STR_LEN);
        else if (strcmp(key, "cuda_version") == 0) g_cuda_version = atoi(val);
        else if (strcmp(key, "init_error") == 0) g_init_error = atoi(val);
        else if (strcmp(key, "gpu") == 0) {
            if (g_count >= MAX_GPUS) break;
            d = &g_devices[g_count];
            memset(d, 0, sizeof(*d));
            d->magic = DEVICE_MAGIC;
            d->index = g_count++;
            d->trace.repeat = 1;
            d->energy_supported = d->instant_supported = d->power_usage_supported = 1;
            d->architecture = 9;
            d->power_limit_mw = 700000;
        } else if (d == NULL) {
            continue;
        } else if (strcmp(key, "name") == 0) copy_value(d->name, val, STR_LEN);
        else if (strcmp(key, "uuid") == 0) copy_value(d->uuid, val, STR_LEN);
        else if (strcmp(key, "pci_bus_id") == 0) copy_value(d->pci_bus_id, val, STR_LEN);
        else if (strcmp(key, "pci_device_id") == 0) d->pci_device_id = (unsigned)strtoul(val, NULL, 0);
        else if (strcmp(key, "architecture") == 0) d->architecture = (unsigned)strtoul(val, NULL, 0);
        else if (strcmp(key, "power_limit_mw") == 0) d->power_limit_mw = (unsigned)strtoul(val, NULL, 0);
        else if (strcmp(key, "memory_total") == 0) d->memory_total = strtoull(val, NULL, 0);
        else if (strcmp(key, "memory_used") == 0) d->memory_used = strtoull(val, NULL, 0);
        else if (strcmp(key, "util_gpu") == 0) d->util_gpu = (unsigned)atoi(val);
        else if (strcmp(key, "util_mem") == 0) d->util_mem = (unsigned)atoi(val);
        else if (strcmp(key, "energy_supported") == 0) d->energy_supported = atoi(val);
        else if (strcmp(key, "instant_supported") == 0) d->instant_supported = atoi(val);
        else if (strcmp(key, "power_usage_supported") == 0) d->power_usage_supported = atoi(val);
        else if (strcmp(key, "energy_offset_mj") == 0) d->energy_offset_mj = strtod(val, NULL);
        else if (strcmp(key, "counter_step_s") == 0) d->counter_step_s = strtod(val, NULL);
        else if (strcmp(key, "call_latency_s") == 0) d->call_latency_s = strtod(val, NULL);
        else if (strcmp(key, "t0") == 0) d->trace.t0 = strtod(val, NULL);
        else if (strcmp(key, "repeat") == 0) d->trace.repeat = atoi(val);
        else if (strcmp(key, "steps") == 0) trace_alloc(&d->trace, atoi(val));
        else if (strcmp(key, "step") == 0) trace_add_step(&d->trace, val);
        else if (strcmp(key, "process") == 0) {
            if (d->n_procs < MAX_PROCS) {
                char *end = NULL;
                d->proc_pid[d->n_procs] = (unsigned)strtoul(val, &end, 10);
                d->proc_mem[d->n_procs] = strtoull(end, NULL, 10);
                d->n_procs++;
            }
        } else if (strcmp(key, "fault") == 0) {
            if (d->n_faults < MAX_FAULTS) {
                char scope[32] = "all";
                double at = 0, until = INFINITY;
                int code = 0;
                if (sscanf(val, "%lf %d %31s %lf", &at, &code, scope, &until) >= 2) {
                    d->faults[d->n_faults].at = at;
                    d->faults[d->n_faults].until = until;
                    d->faults[d->n_faults].code = code;
                    d->faults[d->n_faults].scope = scope_from_name(scope);
                    d->n_faults++;
                }
            }
        } else if (strcmp(key, "mig") == 0) {
            d->mig_mode = 1;
            if (d->n_mig < MAX_MIG && g_mig_used < MAX_GPUS * MAX_MIG) {
                fake_device_t *m = &g_mig_devices[g_mig_used++];
                memset(m, 0, sizeof(*m));
                m->magic = DEVICE_MAGIC;
                m->is_mig = 1;
                m->parent = d;
                m->index = d->n_mig;
                copy_value(m->uuid, val, STR_LEN);
                d->mig[d->n_mig++] = m;
            }
        }
    }
    fclose(f);
    for (int i = 0; i < g_count; i++) {
        fake_device_t *g = &g_devices[i];
        trace_default(&g->trace);
        for (int k = 0; k < g->n_mig; k++) {
            fake_device_t *m = g->mig[k];
            snprintf(m->name, STR_LEN, "%s MIG slice", g->name);
        }
    }
    return NVML_SUCCESS;
}

/* ---- helpers --------------------------------------------------------------------------- */

static int valid_device(const fake_device_t *d) {
    if (d == NULL) return 0;
    int in_main = d >= g_devices && d < g_devices + MAX_GPUS;
    int in_mig = d >= g_mig_devices && d < g_mig_devices + MAX_GPUS * MAX_MIG;
    return (in_main || in_mig) && d->magic == DEVICE_MAGIC;
}

/* The board a handle draws its power from (a MIG slice reports its parent). */
static const fake_device_t *board_of(const fake_device_t *d) { return d->is_mig ? d->parent : d; }

/* The fault code active for this device and scope now, or NVML_SUCCESS. */
static nvmlReturn_t fault_now(const fake_device_t *d, int scope, double t) {
    const fake_device_t *b = board_of(d);
    nvmlReturn_t ret = NVML_SUCCESS;
    double latest = -1e300;
    for (int i = 0; i < b->n_faults; i++) {
        const fault_t *f = &b->faults[i];
        if (t >= f->at && t < f->until && (f->scope == SCOPE_ALL || f->scope == scope) &&
            f->at >= latest) {
            ret = f->code;
            latest = f->at;
        }
    }
    return ret;
}

#define CHECK_INIT()                                                   \
    do {                                                               \
        if (g_refcount <= 0) return NVML_ERROR_UNINITIALIZED;          \
    } while (0)

#define CHECK_DEVICE(h)                                                \
    do {                                                               \
        CHECK_INIT();                                                  \
        if (!valid_device((const fake_device_t *)(h)))                 \
            return NVML_ERROR_INVALID_ARGUMENT;                         \
    } while (0)

#define CHECK_DEVICE_FAULT(h)                                          \
    do {                                                               \
        CHECK_DEVICE(h);                                               \
        nvmlReturn_t _f = fault_now((const fake_device_t *)(h), SCOPE_ALL, now_s()); \
        if (_f != NVML_SUCCESS) return _f;                             \
    } while (0)

static nvmlReturn_t copy_string(char *dst, unsigned int length, const char *src) {
    if (dst == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    size_t n = strlen(src);
    if (length < n + 1) return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(dst, src, n + 1);
    return NVML_SUCCESS;
}

/* ---- init / shutdown / system ----------------------------------------------------------- */

EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t ret = NVML_SUCCESS;
    if (g_refcount == 0) {
        ret = load_config();
        if (ret == NVML_SUCCESS && g_init_error != 0) ret = g_init_error;
    }
    if (ret == NVML_SUCCESS) g_refcount++;
    pthread_mutex_unlock(&g_lock);
    return ret;
}

EXPORT nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
EXPORT nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

EXPORT nvmlReturn_t nvmlShutdown(void) {
    pthread_mutex_lock(&g_lock);
    nvmlReturn_t ret = NVML_SUCCESS;
    if (g_refcount <= 0) ret = NVML_ERROR_UNINITIALIZED;
    else g_refcount--;
    pthread_mutex_unlock(&g_lock);
    return ret;
}

EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
        case NVML_SUCCESS: return "Success";
        case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
        case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
        case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
        case NVML_ERROR_NO_PERMISSION: return "Insufficient Permissions";
        case NVML_ERROR_ALREADY_INITIALIZED: return "Already Initialized";
        case NVML_ERROR_NOT_FOUND: return "Not Found";
        case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
        case NVML_ERROR_INSUFFICIENT_POWER: return "Insufficient External Power";
        case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
        case NVML_ERROR_TIMEOUT: return "Timeout";
        case NVML_ERROR_IRQ_ISSUE: return "Interrupt Request Issue";
        case NVML_ERROR_LIBRARY_NOT_FOUND: return "NVML Shared Library Not Found";
        case NVML_ERROR_FUNCTION_NOT_FOUND: return "Function Not Found";
        case NVML_ERROR_CORRUPTED_INFOROM: return "Corrupted infoROM";
        case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
        case NVML_ERROR_RESET_REQUIRED: return "GPU requires restart";
        case NVML_ERROR_OPERATING_SYSTEM: return "The operating system has blocked the request.";
        case NVML_ERROR_LIB_RM_VERSION_MISMATCH: return "RM has detected an NVML/RM version mismatch.";
        case NVML_ERROR_IN_USE: return "In use by another client";
        case NVML_ERROR_MEMORY: return "Insufficient Memory";
        case NVML_ERROR_NO_DATA: return "No data";
        default: return "Unknown Error";
    }
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    CHECK_INIT();
    return copy_string(version, length, g_driver_version);
}

EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    return copy_string(version, length, g_nvml_version);
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
    if (v == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *v = g_cuda_version;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *v) {
    return nvmlSystemGetCudaDriverVersion(v);
}

/* ---- enumeration ------------------------------------------------------------------------ */

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
    CHECK_INIT();
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *count = (unsigned int)g_count;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int *count) { return nvmlDeviceGetCount_v2(count); }

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **device) {
    CHECK_INIT();
    if (device == NULL || index >= (unsigned int)g_count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &g_devices[index];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, void **device) {
    return nvmlDeviceGetHandleByIndex_v2(index, device);
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByUUID(const char *uuid, void **device) {
    CHECK_INIT();
    if (uuid == NULL || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < g_count; i++) {
        if (strcmp(g_devices[i].uuid, uuid) == 0) {
            *device = &g_devices[i];
            return NVML_SUCCESS;
        }
        for (int k = 0; k < g_devices[i].n_mig; k++) {
            if (strcmp(g_devices[i].mig[k]->uuid, uuid) == 0) {
                *device = g_devices[i].mig[k];
                return NVML_SUCCESS;
            }
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char *bus_id, void **device) {
    CHECK_INIT();
    if (bus_id == NULL || device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    for (int i = 0; i < g_count; i++) {
        if (strcasecmp(g_devices[i].pci_bus_id, bus_id) == 0) {
            *device = &g_devices[i];
            return NVML_SUCCESS;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char *bus_id, void **device) {
    return nvmlDeviceGetHandleByPciBusId_v2(bus_id, device);
}

/* ---- identity ------------------------------------------------------------------------------ */

EXPORT nvmlReturn_t nvmlDeviceGetName(void *h, char *name, unsigned int length) {
    CHECK_DEVICE_FAULT(h);
    return copy_string(name, length, ((fake_device_t *)h)->name);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(void *h, char *uuid, unsigned int length) {
    CHECK_DEVICE_FAULT(h);
    return copy_string(uuid, length, ((fake_device_t *)h)->uuid);
}

EXPORT nvmlReturn_t nvmlDeviceGetIndex(void *h, unsigned int *index) {
    CHECK_DEVICE_FAULT(h);
    if (index == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    const fake_device_t *d = h;
    if (d->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    *index = (unsigned int)d->index;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMinorNumber(void *h, unsigned int *minor) {
    return nvmlDeviceGetIndex(h, minor);
}

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(void *h, nvmlPciInfo_t *pci) {
    CHECK_DEVICE_FAULT(h);
    if (pci == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    const fake_device_t *d = board_of(h);
    memset(pci, 0, sizeof(*pci));
    unsigned int domain = 0, bus = 0, dev = 0, fn = 0;
    sscanf(d->pci_bus_id, "%x:%x:%x.%x", &domain, &bus, &dev, &fn);
    pci->domain = domain;
    pci->bus = bus;
    pci->device = dev;
    pci->pciDeviceId = d->pci_device_id;
    pci->pciSubSystemId = 0;
    strncpy(pci->busId, d->pci_bus_id, sizeof(pci->busId) - 1);
    snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04x:%02x:%02x.%x", domain & 0xffff,
             bus, dev, fn);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v2(void *h, nvmlPciInfo_t *pci) {
    return nvmlDeviceGetPciInfo_v3(h, pci);
}

EXPORT nvmlReturn_t nvmlDeviceGetArchitecture(void *h, unsigned int *arch) {
    CHECK_DEVICE_FAULT(h);
    if (arch == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *arch = board_of(h)->architecture;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(void *h, int *major, int *minor) {
    CHECK_DEVICE_FAULT(h);
    if (major == NULL || minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    static const int majors[] = {0, 0, 3, 5, 6, 7, 7, 8, 8, 9, 10};
    static const int minors[] = {0, 0, 5, 2, 0, 0, 5, 0, 9, 0, 0};
    unsigned int a = board_of(h)->architecture;
    if (a > 10) a = 10;
    *major = majors[a];
    *minor = minors[a];
    return NVML_SUCCESS;
}

/* ---- power and energy ---------------------------------------------------------------------- */

/* Sleep `s` seconds (no lock held: calls on different boards overlap, as on a real driver). */
static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0) {}
}

EXPORT nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(void *h, unsigned long long *energy) {
    CHECK_DEVICE(h);
    if (energy == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    /* A slow call (an H200 takes ~2.5 ms): the value is taken half-way through it. */
    double latency = ((const fake_device_t *)h)->call_latency_s;
    sleep_s(0.5 * latency);
    double t = now_s();
    nvmlReturn_t f = fault_now(h, SCOPE_ENERGY, t);
    if (f != NVML_SUCCESS) return f;
    const fake_device_t *d = h;
    if (d->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    if (!d->energy_supported) return NVML_ERROR_NOT_SUPPORTED;
    t = trace_quantise(&d->trace, t, d->counter_step_s);
    *energy = (unsigned long long)floor(d->energy_offset_mj + trace_cumulative_j(&d->trace, t) * 1000.0);
    sleep_s(0.5 * latency);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(void *h, unsigned int *power) {
    CHECK_DEVICE(h);
    if (power == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    double t = now_s();
    nvmlReturn_t f = fault_now(h, SCOPE_POWER_USAGE, t);
    if (f != NVML_SUCCESS) return f;
    const fake_device_t *d = h;
    if (d->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    if (!d->power_usage_supported) return NVML_ERROR_NOT_SUPPORTED;
    /* Trailing 1 s average, refreshed every 100 ms (on the trace's own grid). */
    double avg_w = trace_average_w(&d->trace, t, 1.0, 0.1);
    *power = (unsigned int)llround(avg_w * 1000.0);
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetFieldValues(void *h, int count, nvmlFieldValue_t *values) {
    CHECK_DEVICE_FAULT(h);
    if (values == NULL || count < 0) return NVML_ERROR_INVALID_ARGUMENT;
    const fake_device_t *d = h;
    for (int i = 0; i < count; i++) {
        double t = now_s();
        nvmlFieldValue_t *v = &values[i];
        v->timestamp = (long long)(t * 1e6);
        v->latencyUsec = 0;
        v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
        memset(&v->value, 0, sizeof(v->value));
        if (v->fieldId != NVML_FI_DEV_POWER_INSTANT || d->is_mig) {
            v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
            continue;
        }
        nvmlReturn_t f = fault_now(d, SCOPE_INSTANT, t);
        if (f != NVML_SUCCESS) {
            v->nvmlReturn = f;
        } else if (!d->instant_supported) {
            v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
        } else {
            v->nvmlReturn = NVML_SUCCESS;
            v->value.uiVal = (unsigned int)llround(trace_power_w(&d->trace, t) * 1000.0);
        }
    }
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(void *h, unsigned int *limit) {
    CHECK_DEVICE_FAULT(h);
    if (limit == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (((fake_device_t *)h)->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    *limit = board_of(h)->power_limit_mw;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(void *h, unsigned int *limit) {
    return nvmlDeviceGetEnforcedPowerLimit(h, limit);
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementDefaultLimit(void *h, unsigned int *limit) {
    return nvmlDeviceGetEnforcedPowerLimit(h, limit);
}

EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(void *h, unsigned int *lo,
                                                                  unsigned int *hi) {
    CHECK_DEVICE_FAULT(h);
    if (lo == NULL || hi == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *hi = board_of(h)->power_limit_mw;
    *lo = *hi / 2;
    return NVML_SUCCESS;
}

/* ---- utilisation, memory, temperature, processes ------------------------------------------- */

EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(void *h, nvmlUtilization_t *u) {
    CHECK_DEVICE_FAULT(h);
    if (u == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    u->gpu = board_of(h)->util_gpu;
    u->memory = board_of(h)->util_mem;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(void *h, nvmlMemory_t *m) {
    CHECK_DEVICE_FAULT(h);
    if (m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    const fake_device_t *d = board_of(h);
    m->total = d->memory_total;
    m->used = d->memory_used;
    m->free = d->memory_total > d->memory_used ? d->memory_total - d->memory_used : 0;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(void *h, nvmlMemory_v2_t *m) {
    CHECK_DEVICE_FAULT(h);
    if (m == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    const fake_device_t *d = board_of(h);
    m->total = d->memory_total;
    m->reserved = 0;
    m->used = d->memory_used;
    m->free = d->memory_total > d->memory_used ? d->memory_total - d->memory_used : 0;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetTemperature(void *h, int sensor, unsigned int *temp) {
    CHECK_DEVICE_FAULT(h);
    (void)sensor;
    if (temp == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *temp = 40;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeMode(void *h, int *mode) {
    CHECK_DEVICE_FAULT(h);
    if (mode == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *mode = 0; /* NVML_COMPUTEMODE_DEFAULT */
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetPersistenceMode(void *h, int *mode) {
    CHECK_DEVICE_FAULT(h);
    if (mode == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *mode = 1;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned int *count,
                                                             nvmlProcessInfo_t *infos) {
    CHECK_DEVICE_FAULT(h);
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    const fake_device_t *d = board_of(h);
    unsigned int n = (unsigned int)d->n_procs;
    if (n == 0) {
        *count = 0;
        return NVML_SUCCESS;
    }
    if (infos == NULL || *count < n) {
        *count = n;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < n; i++) {
        infos[i].pid = d->proc_pid[i];
        infos[i].usedGpuMemory = d->proc_mem[i];
        infos[i].gpuInstanceId = 0xFFFFFFFFu;
        infos[i].computeInstanceId = 0xFFFFFFFFu;
    }
    *count = n;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(void *h, unsigned int *count,
                                                             nvmlProcessInfo_t *infos) {
    return nvmlDeviceGetComputeRunningProcesses_v3(h, count, infos);
}

EXPORT nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(void *h, unsigned int *count,
                                                              nvmlProcessInfo_t *infos) {
    CHECK_DEVICE_FAULT(h);
    (void)infos;
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *count = 0;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetC2cModeInfoV(void *h, void *info) {
    CHECK_DEVICE(h);
    (void)info;
    return NVML_ERROR_NOT_SUPPORTED;
}

/* ---- MIG ------------------------------------------------------------------------------------ */

EXPORT nvmlReturn_t nvmlDeviceGetMigMode(void *h, unsigned int *current, unsigned int *pending) {
    CHECK_DEVICE_FAULT(h);
    if (current == NULL || pending == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    const fake_device_t *d = h;
    if (d->is_mig) return NVML_ERROR_NOT_SUPPORTED;
    if (d->architecture < 7) return NVML_ERROR_NOT_SUPPORTED;
    *current = *pending = (unsigned int)d->mig_mode;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceIsMigDeviceHandle(void *h, unsigned int *is_mig) {
    CHECK_DEVICE(h);
    if (is_mig == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *is_mig = (unsigned int)((fake_device_t *)h)->is_mig;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(void *h, unsigned int *count) {
    CHECK_DEVICE_FAULT(h);
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    const fake_device_t *d = h;
    if (d->is_mig || !d->mig_mode) return NVML_ERROR_NOT_SUPPORTED;
    *count = MAX_MIG;
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(void *h, unsigned int index, void **mig) {
    CHECK_DEVICE_FAULT(h);
    if (mig == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    const fake_device_t *d = h;
    if (d->is_mig || !d->mig_mode) return NVML_ERROR_NOT_SUPPORTED;
    if (index >= MAX_MIG) return NVML_ERROR_INVALID_ARGUMENT;
    if (index >= (unsigned int)d->n_mig) return NVML_ERROR_NOT_FOUND;
    *mig = d->mig[index];
    return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetDeviceHandleFromMigDeviceHandle(void *h, void **device) {
    CHECK_DEVICE(h);
    if (device == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    const fake_device_t *d = h;
    if (!d->is_mig) return NVML_ERROR_INVALID_ARGUMENT;
    *device = d->parent;
    return NVML_SUCCESS;
}
