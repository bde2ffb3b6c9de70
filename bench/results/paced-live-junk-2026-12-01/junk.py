# usage: junk.py DIR...: per tickgate-bench --out directory, each receiver's legit loss at each
# junk rate (flood steps), with where it was lost (veth's ring, the socket's buffer, the AF_XDP
# ring) and the NAPI thread's and the receive side's share of a core; then, per directory, the
# lowest step at which the best socket receiver lost any input, more than 0.1 %, or any packet in
# its socket buffer; and the highest step up to which each tickgate receiver lost nothing, at
# most 0.1 %, or nothing past veth's ring (ahead of XDP, where both paths lose alike).
import json, re, sys, collections

def rate_of(scenario):
    m = re.search(r'-junk(\d+)(k?)', scenario)
    if not m:
        return None
    return int(m.group(1)) * (1000 if m.group(2) else 1)

for d in sys.argv[1:]:
    runs = json.load(open(d + '/raw/runs.json'))
    table = collections.defaultdict(dict)
    for x in runs:
        if not x['scenario'].startswith('flood'):
            continue
        r = rate_of(x['scenario']) or 'max'
        g, c, l = x['generator'], x['cpu'], x['loss']
        by = l['by_reason']
        junk = (g['junk_game_port'] + g['junk_other_port']) / g['elapsed_s']
        table[x['receiver']][r] = dict(
            lost=l['legit_inputs_lost'], pct=l['legit_loss_pct'], junk=junk,
            ring=by.get('veth.tx_dropped', 0), sock=by.get('udp.RcvbufErrors', 0),
            xsk=by.get('xsk.rx_ring_full', 0), napi=c['napi_pct'], recv=c['receiver_pct'],
            unexplained=l['unexplained_packets'],
            hook=(by.get('xdp.bad_magic', 0) + by.get('xdp.no_session', 0)) / c['window_s'])
    rates = sorted({r for t in table.values() for r in t if r != 'max'})
    print(f'## {d}')
    print('receiver         ' + ''.join(f'{r // 1000:>9}k' for r in rates) + '       max')
    for rx, t in table.items():
        print(f'{rx:16} ' + ''.join(f"{t[r]['pct']:9.2f}%" if r in t else ' ' * 10 for r in rates + ['max']))
    print('  (lost inputs; NAPI % / receive % of a core; drops: veth ring, socket buffer, AF_XDP ring)')
    for rx, t in table.items():
        cells = [f"{r if r == 'max' else str(r // 1000) + 'k'}: {t[r]['lost']} ({t[r]['napi']:.0f}/{t[r]['recv']:.0f}; {t[r]['ring']}/{t[r]['sock']}/{t[r]['xsk']})"
                 for r in rates + ['max'] if r in t]
        print(f'  {rx:16} ' + ', '.join(cells))
    bad = [(rx, r) for rx, t in table.items() for r, v in t.items() if v['unexplained'] != 0]
    print('  unexplained packets: ' + (str(bad) if bad else 'none'))
    socks = [rx for rx in table if rx.startswith('socket')]
    def onset(ok):
        for r in rates:
            if all(not ok(table[s][r]) for s in socks if r in table[s]):
                return r
        return None
    print(f"  best socket first loses an input at: {onset(lambda v: v['lost'] == 0)}, more than 0.1 % at:"
          f" {onset(lambda v: v['pct'] <= 0.1)}, first drops in its buffer (udp.RcvbufErrors) at:"
          f" {onset(lambda v: v['sock'] == 0)}")
    for rx in table:
        if rx.startswith('tickgate'):
            def top(ok):
                best = 0
                for r in rates:
                    if not ok(table[rx][r]):
                        break
                    best = r
                return best
            print(f"  {rx}: lost nothing up to {top(lambda v: v['lost'] == 0)}, at most 0.1 % up to"
                  f" {top(lambda v: v['pct'] <= 0.1)}, nothing dropped past veth's ring up to"
                  f" {top(lambda v: v['xsk'] == 0 and v['sock'] == 0)}; at full speed"
                  f" {table[rx]['max']['pct']:.2f} % lost, {table[rx]['max']['xsk']} past the ring, junk dropped"
                  f" by XDP {table[rx]['max']['hook'] / 1e6:.2f} M/s" if 'max' in table[rx] else '')
    print()
