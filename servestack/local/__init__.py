"""A stack on an embedded Ray head: token auth, head lifecycle, REST deploy, rollout status.

The local run deploys the very Serve config the RayService carries, through the same
dashboard REST endpoint the KubeRay operator uses, so "works locally" means the same
document works in the cluster.
"""
