DROP TABLE git_heads;
DROP TABLE git_secrets;
