// braid/data/build/speech.h — espeak-ng utterances written to WAV files, for the speech builders.
//
// Each job is what `espeak-ng -v VOICE -s SPEED -p PITCH [-a AMPLITUDE] -w WAV -- TEXT` would write.
// Most of such a call's time is the program starting (loading its libraries, scanning every voice
// file of espeak-ng-data: ~10 of ~15 ms per short utterance). When braid is built with libespeak-ng
// (Debian libespeak-ng-dev), the jobs go to braid-espeak (data/build/espeak_helper.cc, built beside
// braid), which initializes the library once, reads the voice list once and synthesizes each utterance
// in a child forked from that state: a fresh process's state without the start-up, so the samples and
// files equal the program's bit for bit (tests/speech_test.cpp; the emoji build's 3,812 WAVs are
// byte-identical) whatever the order or the number of workers. It is a program of its own because
// forking braid itself (LibTorch mapped) cost more kernel time than it saved. Without it, or after
// set_speech_helper(false) (the CLI's BRAID_ESPEAK_HELPER=0), each job runs the espeak-ng program.
#pragma once

#include <string>
#include <vector>

namespace braid::data::build {

struct SpeechJob {
  std::string voice;   // an espeak-ng voice name, e.g. "en-gb+f3" (accent + variant)
  int speed = 175;     // words per minute (-s)
  int pitch = 50;      // 0..99 (-p)
  int amplitude = -1;  // 0..200 (-a); -1 = espeak-ng's default
  std::string text;    // spoken as is ("--" before it: a leading '-' is not an option)
  std::string wav_path;
};

// The argv of the espeak-ng program for one job.
std::vector<std::string> espeak_command(const SpeechJob& job);

// Write every job's WAV with at most `threads` at once (<= 0: one per hardware thread), showing a Progress
// line labelled `label`. A job that fails (an unknown voice, a file that cannot be written, a program that
// exits non-zero, a WAV with no samples) is an error naming it; Ctrl-C stops starting new jobs
// (run_commands' contract).
void speak_to_files(const std::vector<SpeechJob>& jobs, int threads, const std::string& label);

// Process-wide switch (default on): false makes speak_to_files run the espeak-ng program per job.
void set_speech_helper(bool allowed);

// "library" when speak_to_files hands the jobs to braid-espeak, "cli" when it runs the espeak-ng program
// (no libespeak-ng in this build, braid-espeak is missing, or set_speech_helper(false)).
std::string speech_engine();

}  // namespace braid::data::build
