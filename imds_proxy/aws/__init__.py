"""Everything that imports boto3/botocore: sts/ (AssumeRole sources, clients, error mapping,
parameters), profiles (~/.aws/config), trust policies
read, doctor's checks (diagnose)."""
