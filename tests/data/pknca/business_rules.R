# PKNCA's summary business rules (R/002-pk.business.rules.R) on small vectors.
# Run from this folder: Rscript business_rules.R   (writes business_rules.csv)
# Used by tests/test_stats.py; the project itself never needs R.
suppressMessages(library(PKNCA))
cases <- list(a = c(1, 4, 16), b = c(0, 2, 4), c = c(0, 0, 2, 4), d = c(0, 0, 0, 2),
              e = c(10, NA, NA, 40), f = c(10, NA, NA, NA, 40),
              g = c(3.1, 7.4, 0.52, 12.9, 5.5, NA))
fns <- list(geo_mean = PKNCA:::business.geomean, geo_cv_pct = PKNCA:::business.geocv,
            mean = PKNCA:::business.mean, sd = PKNCA:::business.sd, cv_pct = PKNCA:::business.cv,
            median = PKNCA:::business.median, min = PKNCA:::business.min,
            max = PKNCA:::business.max)
rows <- lapply(names(cases), function(nm) {
  x <- cases[[nm]]
  data.frame(case = nm, values = paste(ifelse(is.na(x), "NA", format(x, digits = 15)), collapse = ";"),
             as.data.frame(lapply(fns, function(f) as.numeric(f(x)))))
})
out <- do.call(rbind, rows)
out$pknca_version <- as.character(packageVersion("PKNCA"))
write.csv(out, "business_rules.csv", row.names = FALSE, na = "NA")
q <- c(0.05, 0.25, 0.5, 0.9)
write.csv(data.frame(q = q, value = quantile(c(3.1, 7.4, 0.52, 12.9, 5.5), q, type = 7)),
          "quantiles_type7.csv", row.names = FALSE)
