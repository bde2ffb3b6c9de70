"""Prints one line per receiver run of each result folder under DIR: the receiving side's CPU,
tick close, late and lost inputs, and the queue's watermark and wake-up counts.
Usage: python3 show.py DIR"""
import glob
import json
import sys

for runs in sorted(glob.glob(sys.argv[1] + '/*/raw/runs.json')):
    name = runs.split('/')[-3]
    for x in json.load(open(runs)):
        c, t = x['cpu'], x['tick_close']
        report = x.get('receiver_report') or {}
        q = (report.get('queues') or [{}])[0]
        print('%-16s %-15s %4d Hz worker %5.2f%% napi %5.2f%% seq %4.2f%% receiver %5.2f%% | '
              'tick close p50 %5.0f p99 %5.0f p99.9 %5.0f max %5.0f us | late %.4f%% lost %.3f%% | %s %s' % (
                  name, x['receiver'], x['tick_hz'], c['worker_pct'], c['napi_pct'], c['sequencer_pct'],
                  c['receiver_pct'], t['p50_us'], t['p99_us'], t['p999_us'], t['max_us'], x['late_pct'],
                  x['loss']['legit_loss_pct'], q.get('watermarks', ''), q.get('wakeups', '')))
