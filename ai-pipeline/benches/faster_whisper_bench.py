"""The reference side of the `stt` benchmark: faster-whisper on the same
audio and the same CTranslate2 model folder. Prints one JSON line per mode.

usage: faster_whisper_bench.py MODEL_DIR WAV BEAM THREADS COMPUTE_TYPE
"""
import json
import sys
import time

from faster_whisper import BatchedInferencePipeline, WhisperModel

model_dir, wav, beam, threads, compute_type = sys.argv[1:6]
beam, threads = int(beam), int(threads)

started = time.perf_counter()
model = WhisperModel(model_dir, device="cpu", compute_type=compute_type, cpu_threads=threads)
load_s = time.perf_counter() - started


def run(mode, fn):
    started = time.perf_counter()
    segments, _info = fn()
    text = " ".join(s.text.strip() for s in segments)  # the generator does the work
    elapsed = time.perf_counter() - started
    print(json.dumps({"mode": mode, "elapsed_s": elapsed, "load_s": load_s, "text": text}), flush=True)


# Its default long-form transcription (sequential 30 s windows).
run("faster-whisper default", lambda: model.transcribe(wav, beam_size=beam, language="en"))
# With its Silero VAD, as one would run it on calls.
run("faster-whisper vad_filter", lambda: model.transcribe(wav, beam_size=beam, language="en", vad_filter=True))
# Its batched pipeline (VAD + batched 30 s windows), its fastest mode.
batched = BatchedInferencePipeline(model=model)
run("faster-whisper batched", lambda: batched.transcribe(wav, beam_size=beam, language="en", batch_size=8))
