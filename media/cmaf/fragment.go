package cmaf

import (
	"fmt"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Sample is one access unit in a fragment. Times are in the track timescale.
type Sample struct {
	DTS  uint64 // decode time
	Dur  uint32 // duration; DTS of the next sample minus this DTS
	CTO  int32  // PTS - DTS (may be negative; trun version 1 is used)
	Key  bool   // sync sample: a decoder can start here
	Data []byte // payload as it goes into mdat (see VideoSampleData)
}

// Sample flags per ISO/IEC 14496-12 8.8.3.1: a sync sample depends on no
// other; any other sample depends on others and is flagged non-sync, so
// players never seek to it.
const (
	syncFlags    = mp4.SyncSampleFlags
	nonSyncFlags = mp4.SampleDependsOn1 | mp4.NonSyncSampleFlags
)

// Fragment writes one moof+mdat (a CMAF chunk) holding samples, with
// sequence number seq (mfhd) and tfdt = samples[0].DTS. The result is a
// new slice owned by the caller; sample data is copied into it once.
func (t *Track) Fragment(seq uint32, samples []Sample) ([]byte, error) {
	if len(samples) == 0 {
		return nil, ErrNoSamples
	}
	for i := 1; i < len(samples); i++ {
		prev := samples[i-1]
		if want := prev.DTS + uint64(prev.Dur); samples[i].DTS != want {
			return nil, fmt.Errorf("%w: sample %d has DTS %d, want %d (DTS %d + Dur %d of sample %d)",
				ErrTimeline, i, samples[i].DTS, want, prev.DTS, prev.Dur, i-1)
		}
	}

	f, err := mp4.CreateFragment(seq, trackID)
	if err != nil {
		return nil, fmt.Errorf("cmaf: create fragment: %w", err)
	}
	traf := f.Moof.Traf
	traf.Tfdt.SetBaseMediaDecodeTime(samples[0].DTS)
	trun := traf.Trun
	trun.Samples = make([]mp4.Sample, len(samples))
	// Data parts are written straight into the output, so the payload is
	// copied once, not once into mdat and again into the output.
	f.Mdat.DataParts = make([][]byte, len(samples))
	audio := t.codec.IsAudio()
	for i, s := range samples {
		flags := nonSyncFlags
		if s.Key || audio {
			flags = syncFlags
		}
		trun.Samples[i] = mp4.Sample{
			Flags:                 flags,
			Dur:                   s.Dur,
			Size:                  uint32(len(s.Data)),
			CompositionTimeOffset: s.CTO,
		}
		f.Mdat.DataParts[i] = s.Data
	}
	// Move common duration/size/flags to tfhd before sizing the output;
	// EncodeSW would otherwise do it after we allocated.
	if err := traf.OptimizeTfhdTrun(); err != nil {
		return nil, fmt.Errorf("cmaf: optimize trun: %w", err)
	}
	size := int(f.Size())
	sw := bits.NewFixedSliceWriter(size)
	if err := f.EncodeSW(sw); err != nil {
		return nil, fmt.Errorf("cmaf: encode fragment %d: %w", seq, err)
	}
	if sw.Len() != size {
		return nil, fmt.Errorf("cmaf: fragment %d encodes to %d bytes, boxes say %d", seq, sw.Len(), size)
	}
	return sw.Bytes(), nil
}
