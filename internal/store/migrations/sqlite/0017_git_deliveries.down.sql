DROP TABLE git_deliveries;
