"""modelhost's AWS infrastructure as a CDK app (deploy/aws/app.py)."""
