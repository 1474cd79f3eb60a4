// Package kube is capacity verify's and watch's scaler for Kubernetes:
// Deployments scaled through their scale subresource with client-go. It
// is a package of its own so that what only reads verify's results does
// not link client-go.
package kube

import (
	"context"
	"fmt"

	"github.com/loadcap/loadcap/capacity/verify"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1 "k8s.io/client-go/kubernetes/typed/apps/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// Scaler scales Deployments through their scale subresource, as
// kubectl scale does, and reads readiness from the Deployment's status
// (ready replicas of the current generation: an old ReplicaSet's pods do
// not count while a rollout is under way). Targets maps a plan's service
// to its namespace and Deployment (the plan's namespace and deployment
// fields).
type Scaler struct {
	Apps    appsv1.AppsV1Interface
	Targets map[string]Target
}

// Target is the Deployment of one service.
type Target struct{ Namespace, Deployment string }

// NewScaler connects with the kubeconfig at path ("" follows kubectl:
// $KUBECONFIG, then ~/.kube/config) and its context ("" the current one).
func NewScaler(path, kubeContext string, targets map[string]Target) (*Scaler, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	apps, err := appsv1.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Scaler{Apps: apps, Targets: targets}, nil
}

func (k *Scaler) target(service string) (Target, error) {
	t, ok := k.Targets[service]
	if !ok || t.Deployment == "" {
		return t, fmt.Errorf("no Deployment for service %q", service)
	}
	if t.Namespace == "" {
		t.Namespace = "default"
	}
	return t, nil
}

// Scale implements verify.Scaler.
func (k *Scaler) Scale(ctx context.Context, service string, replicas int) error {
	t, err := k.target(service)
	if err != nil {
		return err
	}
	d := k.Apps.Deployments(t.Namespace)
	sc, err := d.GetScale(ctx, t.Deployment, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("deployment %s/%s: %w", t.Namespace, t.Deployment, err)
	}
	if sc.Spec.Replicas == int32(replicas) {
		return nil
	}
	upd := &autoscalingv1.Scale{ObjectMeta: sc.ObjectMeta, Spec: autoscalingv1.ScaleSpec{Replicas: int32(replicas)}}
	if _, err := d.UpdateScale(ctx, t.Deployment, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("deployment %s/%s: scale to %d: %w", t.Namespace, t.Deployment, replicas, err)
	}
	return nil
}

// Ready implements verify.Scaler: the Deployment's ready replicas once its
// controller has seen the latest spec, else 0.
func (k *Scaler) Ready(ctx context.Context, service string) (int, error) {
	t, err := k.target(service)
	if err != nil {
		return 0, err
	}
	dep, err := k.Apps.Deployments(t.Namespace).Get(ctx, t.Deployment, metav1.GetOptions{})
	if err != nil {
		return 0, fmt.Errorf("deployment %s/%s: %w", t.Namespace, t.Deployment, err)
	}
	if dep.Status.ObservedGeneration < dep.Generation {
		return 0, nil
	}
	// Pods of an older ReplicaSet may be ready too during a rollout: only
	// the updated ones count, and never more than asked for.
	ready := min(dep.Status.ReadyReplicas, dep.Status.UpdatedReplicas)
	if dep.Spec.Replicas != nil {
		ready = min(ready, *dep.Spec.Replicas)
	}
	return int(ready), nil
}

var _ verify.Scaler = (*Scaler)(nil)
