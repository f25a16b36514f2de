/*
 * Console of the test guest: formatted lines on debugcon (port 0xe9), one
 * whole line at a time under a spin lock so that the lines of several
 * vCPUs never interleave; isa-debug-exit; failure bookkeeping; and the
 * few libc functions the compiler may call.
 */
#include "guest.h"

static volatile uint32_t console_lock;
volatile uint32_t g_failures;

void spin_lock(volatile uint32_t *l)
{
	while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		while (*l)
			cpu_relax();
}

void spin_unlock(volatile uint32_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

void *memset(void *d, int c, size_t n)
{
	uint8_t *p = d;
	while (n--)
		*p++ = (uint8_t)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	uint8_t *p = d;
	const uint8_t *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

struct buf {
	char s[256];
	size_t n;
};

static void put(struct buf *b, char c)
{
	if (b->n < sizeof(b->s))
		b->s[b->n++] = c;
}

static void put_num(struct buf *b, uint64_t v, unsigned base, unsigned width, char pad)
{
	char tmp[24];
	unsigned n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (width > n) {
		put(b, pad);
		width--;
	}
	while (n)
		put(b, tmp[--n]);
}

/* printf subset: %s %c %d %u %x with an optional '0' flag, width and l/ll. */
static void format(struct buf *b, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(b, *fmt);
			continue;
		}
		char pad = ' ';
		unsigned width = 0, longs = 0;
		fmt++;
		if (*fmt == '0')
			pad = '0', fmt++;
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (unsigned)(*fmt++ - '0');
		while (*fmt == 'l')
			longs++, fmt++;
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			while (*s)
				put(b, *s++);
			break;
		}
		case 'c':
			put(b, (char)va_arg(ap, int));
			break;
		case 'd': {
			int64_t v = longs ? va_arg(ap, int64_t) : va_arg(ap, int);
			if (v < 0) {
				put(b, '-');
				v = -v;
			}
			put_num(b, (uint64_t)v, 10, width, pad);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = longs ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
			put_num(b, v, *fmt == 'u' ? 10 : 16, width, pad);
			break;
		}
		case '%':
			put(b, '%');
			break;
		default:
			return;
		}
	}
}

static void emit(const struct buf *b)
{
	const char *p = b->s;
	size_t n = b->n;

	__asm__ volatile("cld; rep outsb" : "+S"(p), "+c"(n) : "d"((uint16_t)MVT_DEBUGCON_PORT) : "memory");
}

void vsay(const char *fmt, va_list ap)
{
	struct buf b;

	b.n = 0;
	format(&b, fmt, ap);
	spin_lock(&console_lock);
	emit(&b);
	spin_unlock(&console_lock);
}

void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

void say_unlocked(const char *fmt, ...)
{
	struct buf b;
	va_list ap;

	b.n = 0;
	va_start(ap, fmt);
	format(&b, fmt, ap);
	va_end(ap);
	emit(&b);
}

void say_forced(const char *fmt, ...)
{
	struct buf b;
	va_list ap;
	bool locked = false;

	b.n = 0;
	va_start(ap, fmt);
	format(&b, fmt, ap);
	va_end(ap);
	for (unsigned i = 0; i < 100000 && !locked; i++) {
		locked = !__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE);
		if (!locked)
			cpu_relax();
	}
	emit(&b);
	if (locked)
		spin_unlock(&console_lock);
}

void fail(const char *fmt, ...)
{
	struct buf b;
	va_list ap;
	static const char head[] = MVG_FAIL_PREFIX;

	b.n = 0;
	for (const char *h = head; *h; h++)
		put(&b, *h);
	va_start(ap, fmt);
	format(&b, fmt, ap);
	va_end(ap);
	put(&b, '\n');
	__atomic_fetch_add(&g_failures, 1, __ATOMIC_RELAXED);
	spin_lock(&console_lock);
	emit(&b);
	spin_unlock(&console_lock);
}

__attribute__((noreturn)) void guest_exit(uint8_t value)
{
	uint16_t cs;

	outb(MVT_DEBUG_EXIT_PORT, value);
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	for (;;) {
		if (cs & 3)
			cpu_relax();        /* CPL3: no hlt; the VM is ending anyway */
		else
			__asm__ volatile("cli; hlt");
	}
}
