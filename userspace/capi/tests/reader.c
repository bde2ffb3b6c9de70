/* A game server's reading loop in C: opens a frame ring and prints each record, one line each.
 * Built and run by tests/c_reader.rs against libtickgate_capi.so. */
#include <stdio.h>
#include "tickgate.h"

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: reader RING [OUT]\n");
    return 2;
  }
  TgRing *ring = tg_ring_open(argv[1]);
  if (!ring) {
    fprintf(stderr, "reader: cannot open %s\n", argv[1]);
    return 1;
  }
  printf("match %llu\n", (unsigned long long)tg_ring_match_id(ring));
  TgRecord rec;
  int code;
  while ((code = tg_ring_next(ring, &rec)) == TG_RECORD) {
    if (rec.missed) {
      printf("missed %llu\n", (unsigned long long)rec.missed);
    } else if (rec.has_frame) {
      const TgFrame *f = &rec.frame;
      printf("frame seq=%llu tick=%llu hz=%u start=%llu last=%u hash=%02x%02x..", (unsigned long long)rec.seq,
             (unsigned long long)f->tick, f->tick_hz, (unsigned long long)f->start_ns, f->last, f->hash[0],
             f->hash[1]);
      for (size_t i = 0; i < f->inputs_len; i++) {
        const TgInput *in = &f->inputs[i];
        printf(" input=%u/%u/%llu/%llu/%u/", in->kind, in->player, (unsigned long long)in->seq,
               (unsigned long long)in->rx_ns, in->client_frame);
        for (size_t b = 0; b < in->payload_len; b++) printf("%02x", in->payload[b]);
      }
      for (size_t i = 0; i < f->absent_len; i++) printf(" absent=%u", f->absent[i]);
      printf("\n");
    } else {
      printf("record kind=%u seq=%llu len=%zu\n", rec.kind, (unsigned long long)rec.seq, (size_t)rec.body_len);
    }
  }
  printf("end %d\n", code);
  tg_ring_close(ring);
  if (argc == 3) {
    /* Answer the match through its .out ring. */
    TgOut *out = tg_out_open(argv[2]);
    if (!out) {
      fprintf(stderr, "reader: cannot open %s\n", argv[2]);
      return 1;
    }
    const char *hello = "hello from c";
    int to_match = tg_out_send_to_match(out, (const uint8_t *)hello, 12);
    int to_player = tg_out_send_to_player(out, 42, (const uint8_t *)"hi", 2);
    printf("sent %d %d\n", to_match, to_player);
    tg_out_close(out);
  }
  return code == TG_EINVAL ? 1 : 0;
}
