package kubetest

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestOnRealNode(t *testing.T) {
	taint := corev1.Toleration{Key: RealNodeLabel, Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule}
	other := corev1.Toleration{Key: "other", Operator: corev1.TolerationOpExists}
	for _, tc := range []struct {
		name          string
		spec          corev1.PodSpec
		wantSelector  map[string]string
		wantTolerates []corev1.Toleration
	}{
		{"empty spec", corev1.PodSpec{},
			map[string]string{RealNodeLabel: "true"}, []corev1.Toleration{taint}},
		{"keeps what the spec asks", corev1.PodSpec{NodeSelector: map[string]string{"disk": "ssd"}, Tolerations: []corev1.Toleration{other}},
			map[string]string{"disk": "ssd", RealNodeLabel: "true"}, []corev1.Toleration{other, taint}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			OnRealNode(&spec)
			if !reflect.DeepEqual(spec.NodeSelector, tc.wantSelector) {
				t.Errorf("node selector = %v, want %v", spec.NodeSelector, tc.wantSelector)
			}
			if !reflect.DeepEqual(spec.Tolerations, tc.wantTolerates) {
				t.Errorf("tolerations = %v, want %v", spec.Tolerations, tc.wantTolerates)
			}
		})
	}
}
