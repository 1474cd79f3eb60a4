package kube

import (
	"context"
	"testing"

	"github.com/loadcap/loadcap/capacity/verify"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// deployment is a Deployment whose controller has rolled out replicas,
// ready of them ready.
func deployment(ns, name string, replicas, ready int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1},
		Spec:       appsv1.DeploymentSpec{Replicas: &replicas},
		Status:     appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: replicas, UpdatedReplicas: replicas, ReadyReplicas: ready},
	}
}

// fakeCluster is client-go's fake clientset with the scale subresource of
// Deployments served from the tracked Deployments, as the API server does.
func fakeCluster(objs ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objs...)
	c.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		g := a.(k8stesting.GetAction)
		obj, err := c.Tracker().Get(appsv1.SchemeGroupVersion.WithResource("deployments"), g.GetNamespace(), g.GetName())
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment)
		return true, &autoscalingv1.Scale{ObjectMeta: d.ObjectMeta, Spec: autoscalingv1.ScaleSpec{Replicas: *d.Spec.Replicas}}, nil
	})
	c.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		sc := a.(k8stesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		obj, err := c.Tracker().Get(appsv1.SchemeGroupVersion.WithResource("deployments"), sc.Namespace, sc.Name)
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment).DeepCopy()
		d.Spec.Replicas = &sc.Spec.Replicas
		d.Generation++ // the controller has not seen it yet
		return true, sc, c.Tracker().Update(appsv1.SchemeGroupVersion.WithResource("deployments"), d, d.Namespace)
	})
	return c
}

// Scaling goes through the scale subresource of the service's Deployment;
// readiness counts only the pods of the new spec, and only once the
// controller has observed it.
func TestScaler(t *testing.T) {
	ctx := context.Background()
	c := fakeCluster(deployment("shop", "product-svc", 3, 3))
	k := &Scaler{Apps: c.AppsV1(), Targets: map[string]Target{"product": {Namespace: "shop", Deployment: "product-svc"}}}
	if n, err := k.Ready(ctx, "product"); err != nil || n != 3 {
		t.Fatalf("ready %d, %v; want 3", n, err)
	}
	if err := k.Scale(ctx, "product", 8); err != nil {
		t.Fatal(err)
	}
	d, _ := c.AppsV1().Deployments("shop").Get(ctx, "product-svc", metav1.GetOptions{})
	if *d.Spec.Replicas != 8 {
		t.Fatalf("spec.replicas %d, want 8", *d.Spec.Replicas)
	}
	if n, _ := k.Ready(ctx, "product"); n != 0 {
		t.Errorf("ready %d before the controller observed the new spec, want 0", n)
	}
	// The controller rolls out: 8 updated, 6 ready so far.
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 8, UpdatedReplicas: 8, ReadyReplicas: 6}
	c.Tracker().Update(appsv1.SchemeGroupVersion.WithResource("deployments"), d, "shop")
	if n, _ := k.Ready(ctx, "product"); n != 6 {
		t.Errorf("ready %d, want 6", n)
	}
	d.Status.ReadyReplicas = 8
	c.Tracker().Update(appsv1.SchemeGroupVersion.WithResource("deployments"), d, "shop")
	if err := verify.WaitReady(ctx, k, map[string]int{"product": 8}, 0, nil); err != nil {
		t.Errorf("WaitReady: %v", err)
	}
	if err := k.Scale(ctx, "cart", 2); err == nil {
		t.Error("a service without a Deployment was scaled")
	}
	k.Targets["gone"] = Target{Namespace: "shop", Deployment: "nope"}
	if _, err := k.Ready(ctx, "gone"); err == nil {
		t.Error("a missing Deployment reported ready")
	}
}
