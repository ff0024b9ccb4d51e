#!/bin/bash
# usage: run.sh ROUNDS [sync|async]
P="psql -q -U postgres -h 127.0.0.1"
mode=${2:-sync}
opts=""; [ "$mode" = async ] && opts="-c synchronous_commit=off"
start=${START:-0}
for r in $(seq 1 $1); do
  i=$(( start + (r-1)*1500 ))
  for db in tr cte; do
    f=trigger.sql; [ $db = cte ] && f=cte.sql
    $P $db -c checkpoint
    w0=$($P $db -Atc 'select pg_current_wal_lsn()')
    tps=$(PGOPTIONS="$opts" pgbench -M prepared -h 127.0.0.1 -U postgres -n -c 4 -j 2 -t 1500 -D i=$i -f $f $db 2>&1 | awk '/^tps/ {print $3}')
    w1=$($P $db -Atc 'select pg_current_wal_lsn()')
    wal=$($P $db -Atc "select round(pg_wal_lsn_diff('$w1','$w0') / (4*1500*8))")
    echo "round $r $mode $db: events/s $(echo "$tps*8" | bc) WAL/event $wal"
  done
done
