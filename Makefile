# Builds what CI rebuilds and git never holds: BPF objects.
CLANG ?= clang
INSTR := src/gotel/instrumentation
BPF_CFLAGS := -O2 -g -target bpf -Wall -Werror -Wpadded \
	-I$(INSTR) -I/usr/include/x86_64-linux-gnu
BPF_SRCS := $(wildcard $(INSTR)/*/*.bpf.c) $(wildcard src/gotel/target/*.bpf.c)
BPF_OBJS := $(BPF_SRCS:.c=.o)
HEADERS := $(wildcard $(INSTR)/include/*.h $(INSTR)/*/*.h)

.PHONY: bpf clean
bpf: $(BPF_OBJS)

%.bpf.o: %.bpf.c $(HEADERS)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

clean:
	rm -f $(BPF_OBJS)
