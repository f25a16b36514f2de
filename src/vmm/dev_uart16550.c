/*
 * A 16550 UART reduced to what polled output needs, with the register map
 * of the 16550 data sheet (offsets from the base port):
 *   0  RBR (read) / THR (write), or DLL when LCR.DLAB = 1
 *   1  IER, or DLM when LCR.DLAB = 1
 *   2  IIR (read) / FCR (write)
 *   3  LCR   4  MCR   5  LSR   6  MSR   7  SCR
 * The transmitter is infinitely fast: LSR always reads THRE | TEMT, and
 * every THR byte goes straight to console_out. Nothing is ever received
 * (RBR reads 0, LSR.DR stays clear) and no interrupt is raised.
 */
#include "vmm/devices.h"

#include <errno.h>
#include <pthread.h>

#include "util/alloc.h"

enum {
	UART_RBR_THR = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_LCR = 3,
	UART_MCR = 4, UART_LSR = 5, UART_MSR = 6, UART_SCR = 7,
};

#define UART_LCR_DLAB 0x80
#define UART_LSR_THRE 0x20      /* transmit holding register empty */
#define UART_LSR_TEMT 0x40      /* transmitter empty */
#define UART_IIR_NO_INT 0x01    /* no interrupt pending */
#define UART_IIR_FIFO 0xc0      /* FIFOs enabled (FCR bit 0 set) */
#define UART_FCR_ENABLE 0x01
#define UART_MCR_LOOP 0x10
#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI 0x40
#define UART_MSR_DCD 0x80

struct vmm_uart {
	/* vCPUs print concurrently; the register file is one unit. */
	pthread_mutex_t lock;
	const vmm_hooks *hooks;
	const char *src;
	uint8_t dll, dlm, ier, lcr, mcr, scr;
	bool fifo_enabled;
};

/*
 * MSR: the modem lines a terminal would assert (CTS, DSR, DCD); in
 * loopback mode they mirror MCR's RTS, DTR, OUT1, OUT2 as the data sheet
 * wires them, so drivers' loopback probes succeed.
 */
static uint8_t uart_msr(const vmm_uart *u)
{
	if (!(u->mcr & UART_MCR_LOOP))
		return UART_MSR_CTS | UART_MSR_DSR | UART_MSR_DCD;
	return ((u->mcr & 0x02) ? UART_MSR_CTS : 0) | ((u->mcr & 0x01) ? UART_MSR_DSR : 0) |
	       ((u->mcr & 0x04) ? UART_MSR_RI : 0) | ((u->mcr & 0x08) ? UART_MSR_DCD : 0);
}

static uint8_t uart_reg_read(const vmm_uart *u, uint64_t reg)
{
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_RBR_THR:
		return dlab ? u->dll : 0;
	case UART_IER:
		return dlab ? u->dlm : u->ier;
	case UART_IIR_FCR:
		return UART_IIR_NO_INT | (u->fifo_enabled ? UART_IIR_FIFO : 0);
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		return UART_LSR_THRE | UART_LSR_TEMT;
	case UART_MSR:
		return uart_msr(u);
	default:
		return u->scr;
	}
}

/* Returns true when @v is a byte to transmit. */
static bool uart_reg_write(vmm_uart *u, uint64_t reg, uint8_t v)
{
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_RBR_THR:
		if (dlab)
			u->dll = v;
		/* In loopback the byte would go to our (absent) receiver. */
		return !dlab && !(u->mcr & UART_MCR_LOOP);
	case UART_IER:
		if (dlab)
			u->dlm = v;
		else
			u->ier = v & 0x0f;
		return false;
	case UART_IIR_FCR:
		u->fifo_enabled = v & UART_FCR_ENABLE;
		return false;
	case UART_LCR:
		u->lcr = v;
		return false;
	case UART_MCR:
		u->mcr = v & 0x1f;
		return false;
	case UART_SCR:
		u->scr = v;
		return false;
	default:
		return false;   /* LSR and MSR are read-only */
	}
}

static mv_memtx uart_read(void *opaque, uint64_t addr, uint64_t *data, unsigned size)
{
	vmm_uart *u = opaque;

	(void)size;
	pthread_mutex_lock(&u->lock);
	*data = uart_reg_read(u, addr);
	pthread_mutex_unlock(&u->lock);
	return MV_MEMTX_OK;
}

static mv_memtx uart_write(void *opaque, uint64_t addr, uint64_t data, unsigned size)
{
	vmm_uart *u = opaque;
	bool tx;

	(void)size;
	pthread_mutex_lock(&u->lock);
	tx = uart_reg_write(u, addr, (uint8_t)data);
	/* Under the lock, so bytes of concurrent writers keep their order. */
	if (tx)
		vmm_hook_console_out(u->hooks, u->src, (uint8_t)data);
	pthread_mutex_unlock(&u->lock);
	return MV_MEMTX_OK;
}

/* Byte registers only, as the 16550's 8-bit bus (and QEMU's serial). */
static const mv_region_ops uart_ops = {
	.read = uart_read,
	.write = uart_write,
	.endianness = MV_ENDIAN_LITTLE,
	.valid = { .min_access_size = 1, .max_access_size = 1 },
	.impl = { .min_access_size = 1, .max_access_size = 1 },
};

int vmm_uart_new(mv_memory *mem, const char *src, const vmm_hooks *hooks, vmm_uart **dev,
		 mv_region **out)
{
	vmm_uart *u = mv_zalloc(NULL, sizeof(*u));
	mv_io_region *r;
	int ret;

	if (!u)
		return -ENOMEM;
	pthread_mutex_init(&u->lock, NULL);
	u->hooks = hooks;
	u->src = src;
	ret = mv_io_region_new(mem, "serial", 8, &uart_ops, u, &r);
	if (ret) {
		vmm_uart_free(u);
		return ret;
	}
	*dev = u;
	*out = mv_io_region_base(r);
	return 0;
}

void vmm_uart_free(vmm_uart *u)
{
	if (!u)
		return;
	pthread_mutex_destroy(&u->lock);
	mv_free(NULL, u);
}
