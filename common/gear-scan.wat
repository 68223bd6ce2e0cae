;; The chunker's gear-hash scan (common/chunker.ts), as WebAssembly: the one hot loop of every
;; PUT, compiled ahead of time so its speed does not depend on a JIT's mood (V8 deoptimized the
;; JavaScript version in some Worker starts and left it at a tenth of its speed for the run).
;;
;; Memory: the 256-entry gear table (i32, written by gear-scan.ts) at 0, the block to scan at
;; DATA (1024), up to BLOCK_MAX (65536) bytes. Never change what this computes: see STABILITY in
;; chunker.ts. Rebuild gear-scan.wasm with `npm run build:wasm` (a unit test checks the two agree).
(module
  (memory (export "memory") 2)
  ;; The running hash after a scan that found no cut.
  (global $carry (mut i32) (i32.const 0))
  (func (export "carry") (result i32) (global.get $carry))

  ;; Hash the `len` bytes at DATA on from hash `h`; return the offset just past the first byte
  ;; whose hash has no `mask` bit set, or -1 with the running hash left in $carry.
  (func (export "scan") (param $len i32) (param $h i32) (param $mask i32) (result i32)
    (local $p i32) (local $end i32) (local $words_end i32) (local $x i32)
    (local $h1 i32) (local $h2 i32) (local $h3 i32) (local $h4 i32)
    (local.set $p (i32.const 1024))
    (local.set $end (i32.add (i32.const 1024) (local.get $len)))
    (local.set $words_end (i32.add (i32.const 1024) (i32.and (local.get $len) (i32.const -4))))
    ;; Four bytes per step from an aligned little-endian word, one test for all four hashes; on
    ;; a hit the byte loop below starts again at the word to find the exact byte.
    (block $words_done
      (loop $words
        (br_if $words_done (i32.ge_u (local.get $p) (local.get $words_end)))
        (local.set $x (i32.load (local.get $p)))
        (local.set $h1 (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.shl (i32.and (local.get $x) (i32.const 255)) (i32.const 2)))))
        (local.set $h2 (i32.add (i32.shl (local.get $h1) (i32.const 1))
          (i32.load (i32.shl (i32.and (i32.shr_u (local.get $x) (i32.const 8)) (i32.const 255)) (i32.const 2)))))
        (local.set $h3 (i32.add (i32.shl (local.get $h2) (i32.const 1))
          (i32.load (i32.shl (i32.and (i32.shr_u (local.get $x) (i32.const 16)) (i32.const 255)) (i32.const 2)))))
        (local.set $h4 (i32.add (i32.shl (local.get $h3) (i32.const 1))
          (i32.load (i32.shl (i32.shr_u (local.get $x) (i32.const 24)) (i32.const 2)))))
        (br_if $words_done
          (i32.or
            (i32.or (i32.eqz (i32.and (local.get $h1) (local.get $mask))) (i32.eqz (i32.and (local.get $h2) (local.get $mask))))
            (i32.or (i32.eqz (i32.and (local.get $h3) (local.get $mask))) (i32.eqz (i32.and (local.get $h4) (local.get $mask))))))
        (local.set $h (local.get $h4))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (br $words)))
    (block $bytes_done
      (loop $bytes
        (br_if $bytes_done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1))
          (i32.load (i32.shl (i32.load8_u (local.get $p)) (i32.const 2)))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (return (i32.sub (local.get $p) (i32.const 1024)))))
        (br $bytes)))
    (global.set $carry (local.get $h))
    (i32.const -1)))
