package config

import (
	"fmt"
	"reflect"
	"regexp"

	"github.com/go-viper/mapstructure/v2"
	koanfyaml "github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/rawbytes"
	"github.com/knadh/koanf/v2"
)

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func yamlSyntaxError(file string, err error) Error {
	e := Error{File: file, Msg: "YAML syntax: " + err.Error()}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		fmt.Sscan(m[1], &e.Line)
		e.Col = 1
	}
	return e
}

// unionHook turns the bare-string forms of Dataset and Source into structs.
func unionHook(from, to reflect.Type, v any) (any, error) {
	s, ok := v.(string)
	if !ok || from.Kind() != reflect.String {
		return v, nil
	}
	switch to {
	case typDataset:
		return map[string]any{"path": s}, nil
	case typSource:
		return map[string]any{"name": s}, nil
	}
	return v, nil
}

// seedsHook turns the list form of seeds into {train: [...]}.
func seedsHook(from, to reflect.Type, v any) (any, error) {
	if to == typSeeds && from.Kind() == reflect.Slice {
		return map[string]any{"train": v}, nil
	}
	return v, nil
}

// decodeExperiment decodes a file that passed the strict walk. koanf decodes
// with weak typing off and unused keys as errors, so the two can never
// silently disagree.
func decodeExperiment(file string, data []byte) (Experiment, error) {
	var exp Experiment
	k := koanf.NewWithConf(koanf.Conf{Delim: "\x00", StrictMerge: true})
	if err := k.Load(rawbytes.Provider(data), koanfyaml.Parser()); err != nil {
		return exp, Errors{{File: file, Msg: "parse: " + err.Error()}}
	}
	dc := &mapstructure.DecoderConfig{
		ErrorUnused:      true,
		WeaklyTypedInput: false,
		TagName:          "koanf",
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			unionHook,
			seedsHook,
			mapstructure.StringToTimeDurationHookFunc(),
			mapstructure.TextUnmarshallerHookFunc()),
	}
	if err := k.UnmarshalWithConf("", &exp, koanf.UnmarshalConf{Tag: "koanf", DecoderConfig: dc}); err != nil {
		return exp, Errors{{File: file, Msg: "decode: " + err.Error()}}
	}
	return exp, nil
}
